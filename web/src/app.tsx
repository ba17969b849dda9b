import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { get, setUnauthorizedHandler } from "./api/client";
import { ApiError } from "./api/errors";
import type { Whoami } from "./api/types";
import { ErrorAlert } from "./components/ErrorAlert";
import { TopBar } from "./components/TopBar";
import { SessionContext, type Session } from "./lib/context";
import { LiveConnection, LiveHub, pauseWhileHidden, type Timers } from "./lib/live";
import { focusHeading, matchRoute, navigate, useLocation, type Params } from "./lib/router";
import { ActionPage } from "./pages/Action";
import { ROUTES } from "./routes";
import { ActionsPage } from "./pages/Actions";
import { AppPage } from "./pages/App";
import { ApprovalsPage } from "./pages/Approvals";
import { AuditPage } from "./pages/Audit";
import { ConfigPage } from "./pages/Config";
import { HostPage } from "./pages/Host";
import { HostsPage } from "./pages/Hosts";
import { LoginPage } from "./pages/Login";
import { OverviewPage } from "./pages/Overview";

type Page = (p: Params) => preact.JSX.Element;

const PAGES: [string, Page][] = [
  [ROUTES.overview, () => <OverviewPage />],
  [ROUTES.hosts, () => <HostsPage />],
  [ROUTES.host, (p) => <HostPage key={p.host} host={p.host as string} />],
  [ROUTES.app, (p) => <AppPage key={p.name} name={p.name as string} />],
  [ROUTES.actions, () => <ActionsPage />],
  [ROUTES.action, (p) => <ActionPage key={p.id} id={p.id as string} />],
  [ROUTES.approvals, () => <ApprovalsPage />],
  [ROUTES.audit, () => <AuditPage />],
  [ROUTES.config, () => <ConfigPage />],
];

function route(path: string): preact.JSX.Element {
  for (const [pattern, page] of PAGES) {
    const params = matchRoute(pattern, path);
    if (params) return page(params);
  }
  return (
    <main id="main">
      <h1 tabIndex={-1}>Not found</h1>
      <p>
        There is no page at <code>{path}</code>. <a href="/">Go to the overview</a>.
      </p>
    </main>
  );
}

/** Focuses the page's search box on "/", unless the user is typing somewhere. */
function onSlash(e: KeyboardEvent): void {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target as HTMLElement | null;
  if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
  const box = document.querySelector<HTMLInputElement>("input[data-search]");
  if (!box) return;
  e.preventDefault();
  box.focus();
  box.select();
}

const pageVisibility = {
  hidden: () => document.visibilityState === "hidden",
  onChange(listener: () => void) {
    document.addEventListener("visibilitychange", listener);
    return () => document.removeEventListener("visibilitychange", listener);
  },
};

export function App() {
  const loc = useLocation();
  const [who, setWho] = useState<Whoami | null>(null);
  const [error, setError] = useState<string | null>(null);
  const hub = useMemo(() => new LiveHub(), []);
  const session: Session = useMemo(() => ({ who, setWho, hub }), [who, hub]);
  const onLogin = loc.path === ROUTES.login;

  // After a client-side navigation (not the first load, not a filter change of the query
  // string), the new page's heading gets the focus.
  const landed = useRef(false);
  useEffect(() => {
    if (landed.current) focusHeading();
    landed.current = true;
  }, [loc.path]);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setWho(null);
      hub.handlers.state("disconnected");
      if (location.pathname !== "/login") navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
    });
    addEventListener("keydown", onSlash);
    return () => removeEventListener("keydown", onSlash);
  }, []);

  // Who is signed in: asked once, and again after signing in (the login page sets it).
  useEffect(() => {
    if (who || onLogin) return;
    get<Whoami>("/api/v1/whoami").then(setWho, () => undefined);
  }, [onLogin, who === null]);

  // One live connection while signed in.
  const signedIn = who !== null;
  useEffect(() => {
    if (!signedIn) return;
    // The server ended the stream: signed out elsewhere (a 401 sends to /login) or grants changed.
    hub.onEnd = () => void get<Whoami>("/api/v1/whoami").then(setWho, () => undefined);
    const timers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as number) };
    const conn = new LiveConnection(
      "/api/v1/events",
      (url) => new EventSource(url),
      timers,
      {
        ...hub.handlers,
        // A connect attempt failed before its hello, maybe refused (EventSource hides the 401):
        // retry only while signed in or while the server cannot be reached. A 401 of whoami
        // sends the user to /login (the client's handler), which stops this connection.
        check: () =>
          get<Whoami>("/api/v1/whoami").then(
            () => true,
            (err) => !(err instanceof ApiError && (err.status === 401 || err.status === 403)),
          ),
      },
    );
    conn.start();
    // Closed while the tab is hidden: open streams of background tabs use up the browser's
    // connections to the server.
    const unwatch = pauseWhileHidden(conn, pageVisibility, timers);
    return () => {
      unwatch();
      conn.stop();
      hub.handlers.state("disconnected");
    };
  }, [signedIn, hub]);

  return (
    <SessionContext.Provider value={session}>
      <TopBar onError={setError} />
      {error && <ErrorAlert errors={[error]} />}
      {onLogin ? <LoginPage /> : route(loc.path)}
    </SessionContext.Provider>
  );
}
