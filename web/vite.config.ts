import { defineConfig } from "vitest/config";

// The server sends `Content-Security-Policy: default-src 'self'`: the build has no inline
// script or style, only hashed files under /assets/.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/drover/gui/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    modulePreload: { polyfill: false },
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  resolve: {
    alias: { react: "preact/compat", "react-dom": "preact/compat" },
  },
  server: {
    proxy: { "/api": { target: process.env.DROVER_API ?? "http://127.0.0.1:8080", changeOrigin: false } },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
