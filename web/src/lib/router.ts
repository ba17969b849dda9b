// A tiny router over the History API: routes are patterns like `/apps/:name`.
import { useEffect, useState } from "preact/hooks";

export type Params = Record<string, string>;

/** The parameters of `path` under `pattern`, or null when it does not match. */
export function matchRoute(pattern: string, path: string): Params | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Params = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    const g = got[i] as string;
    if (w.startsWith(":")) {
      try {
        params[w.slice(1)] = decodeURIComponent(g);
      } catch {
        return null;
      }
    } else if (w !== g) return null;
  }
  return params;
}

/** Where to go after signing in: only a path of this site, never another origin. */
export function safeNext(next: string | null, origin: string = location.origin): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  let url: URL;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin || url.pathname.startsWith("/login")) return "/";
  return next;
}

/**
 * Moves focus to the page's heading (after a client-side navigation), so that keyboard and
 * screen-reader users start on the new page rather than on the link they left.
 */
export function focusHeading(root: Pick<ParentNode, "querySelector"> = document): boolean {
  const heading = root.querySelector<HTMLElement>("main h1");
  if (!heading) return false;
  if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
  heading.focus();
  return true;
}

export interface Loc {
  path: string;
  search: string;
}

const current = (): Loc => ({ path: location.pathname, search: location.search });
const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  for (const l of [...listeners]) l();
}

/** Changes the query string of the current page without a history entry (filters). */
export function replaceSearch(search: string): void {
  navigate(location.pathname + search, true);
}

export function useLocation(): Loc {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    listeners.add(update);
    addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      removeEventListener("popstate", update);
    };
  }, []);
  return loc;
}

/** A click that the router should take (a plain left click on a same-site link). */
export function isPlainClick(e: MouseEvent): boolean {
  return e.button === 0 && !e.metaKey && !e.ctrlKey && !e.shiftKey && !e.altKey && !e.defaultPrevented;
}
