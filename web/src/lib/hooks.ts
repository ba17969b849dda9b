import { useEffect, useRef, useState } from "preact/hooks";
import { readFilters, writeFilters, type Filters } from "./filters";
import { replaceSearch, useLocation } from "./router";

/** The page's filters, kept in its query string. */
export function useFilters<K extends string>(defaults: Filters<K>): [Filters<K>, (change: Partial<Filters<K>>) => void] {
  const loc = useLocation();
  const values = readFilters(loc.search, defaults);
  const set = (change: Partial<Filters<K>>) => {
    const next = { ...readFilters(location.search, defaults), ...change } as Filters<K>;
    replaceSearch(writeFilters(next, defaults));
  };
  return [values, set];
}

/**
 * `value`, once it has stopped changing for `ms`. Values are compared by their JSON, not by
 * identity (a filters object is built anew each render), and the settled value is the same
 * object until it changes.
 */
export function useDebounced<T>(value: T, ms = 250): T {
  const key = JSON.stringify(value);
  const [settled, setSettled] = useState(() => ({ key, value }));
  useEffect(() => {
    if (key === settled.key) return;
    const t = setTimeout(() => setSettled({ key, value }), ms);
    return () => clearTimeout(t);
  }, [key, ms]);
  return settled.value;
}

/** The time now, as of this render; renders again every `ms` so that "3 min ago" stays true. */
export function useNow(ms = 15_000): number {
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return Date.now();
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · drover`;
  }, [title]);
}

/**
 * Calls `poll` every `ms` while the page is visible, and at once when it shows again (a hidden
 * tab asks nothing); not at all while `active` is false. For what no live change announces.
 */
export function usePolling(poll: () => void, ms: number, active = true): void {
  const pollRef = useRef(poll);
  pollRef.current = poll;
  useEffect(() => {
    if (!active) return;
    const visible = () => document.visibilityState !== "hidden";
    const t = setInterval(() => {
      if (visible()) pollRef.current();
    }, ms);
    const onVisibility = () => {
      if (visible()) pollRef.current();
    };
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      clearInterval(t);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [ms, active]);
}
