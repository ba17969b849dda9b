// The GUI's routes: the server (src/drover/server/api/gui.py) serves the page for each of these
// paths and the trees under them, so that every deep link loads.
export const ROUTES = {
  overview: "/",
  login: "/login",
  hosts: "/hosts",
  host: "/hosts/:host",
  app: "/apps/:name",
  actions: "/actions",
  action: "/actions/:id",
  approvals: "/approvals",
  audit: "/audit",
  config: "/config",
} as const;
