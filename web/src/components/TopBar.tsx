import { useEffect, useState } from "preact/hooks";
import { post } from "../api/client";
import { errorText } from "../api/errors";
import { useSession } from "../lib/context";
import { CONNECTION_TEXT, type ConnState } from "../lib/live";
import { maySomewhere } from "../lib/permissions";
import { navigate, useLocation } from "../lib/router";
import { applyTheme, readTheme, type Theme } from "../lib/theme";
import { Link } from "./Link";

export function Connection() {
  const { hub } = useSession();
  const [state, setState] = useState<ConnState>(hub.state);
  useEffect(() => {
    setState(hub.state);
    return hub.onState(setState);
  }, [hub]);
  return (
    <span class={`conn conn-${state}`} data-testid="connection" role="status" data-state={state}>
      {CONNECTION_TEXT[state]}
    </span>
  );
}

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(() => (document.documentElement.dataset.theme as Theme) ?? readTheme());
  const other: Theme = theme === "dark" ? "light" : "dark";
  return (
    <button
      type="button"
      class="ghost"
      data-testid="theme-toggle"
      aria-label={`switch to the ${other} theme`}
      aria-pressed={theme === "dark"}
      onClick={() => {
        applyTheme(other, true);
        setTheme(other);
      }}
    >
      {theme === "dark" ? "☾ dark" : "☀ light"}
    </button>
  );
}

const NAV: [string, string, ((p: string) => boolean)?][] = [
  ["/", "Overview", (p) => p === "/" || p.startsWith("/apps/")],
  ["/hosts", "Hosts"],
  ["/actions", "Actions"],
  ["/approvals", "Approvals"],
  ["/audit", "Audit"],
  ["/config", "Config"],
];

export function TopBar({ onError }: { onError(text: string): void }) {
  const { who, setWho } = useSession();
  const { path } = useLocation();
  const signOut = async () => {
    try {
      await post("/api/v1/logout");
      setWho(null);
      navigate("/login");
    } catch (err) {
      onError(errorText(err));
    }
  };
  return (
    <header class="topbar">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Link class="brand" href="/">
        drover
      </Link>
      {(who || path !== "/login") && (
      <nav aria-label="main">
        {NAV.filter(([href]) => href !== "/audit" || maySomewhere(who, "audit")).map(([href, text, active]) => {
          const current = active ? active(path) : path === href || path.startsWith(`${href}/`);
          return (
            <Link key={href} href={href} aria-current={current ? "page" : undefined}>
              {text}
            </Link>
          );
        })}
      </nav>
      )}
      <div class="topbar-end">
        <Connection />
        <ThemeToggle />
        {who && (
          <>
            <span class="user" data-testid="user-name" title={who.grants.map((g) => g.role).join(", ")}>
              {who.name}
            </span>
            <button type="button" class="ghost" onClick={signOut}>
              Sign out
            </button>
          </>
        )}
      </div>
    </header>
  );
}
