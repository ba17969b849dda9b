"""The web GUI's built bundle: `web/` (TypeScript, Preact) is built by Vite into `dist/` here,
which the wheel carries, so installing drover needs no Node.js. server.api.gui serves it."""
