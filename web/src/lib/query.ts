// Data of a page: fetched when its key changes, fetched again when a live change touches it or
// the live connection comes back. The old data stays on show until the new one is in.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, errorText } from "../api/errors";
import type { Change } from "../api/types";
import { Coalescer } from "./coalesce";
import { useSession } from "./context";

export interface Query<T> {
  data: T | undefined;
  error: string | null;
  status: number | null; // of the last error: 403, 404, ...
  loading: boolean;
  refetch(): void;
}

export type Touched = (change: Change) => boolean;

export function useQuery<T>(
  key: string | null,
  fetcher: (signal: AbortSignal) => Promise<T>,
  touched?: Touched,
  /** Fetches start at least this far apart (a page that changes many times a second). */
  minGapMs = 0,
): Query<T> {
  const { hub } = useSession();
  const [state, setState] = useState<{ data: T | undefined; error: string | null; status: number | null; loading: boolean }>({
    data: undefined,
    error: null,
    status: null,
    loading: key !== null,
  });
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const touchedRef = useRef(touched);
  touchedRef.current = touched;
  const keyRef = useRef(key);
  keyRef.current = key;
  // Refused (403): a change does not fetch it again. Each refusal is audited, and an audit
  // change would otherwise fetch the audit log again, be refused again, and so on.
  const refusedRef = useRef(false);
  refusedRef.current = state.status === 403;

  const coalescer = useMemo(() => {
    const controller = new AbortController();
    const c = new Coalescer(async () => {
      if (key === null || controller.signal.aborted) return;
      setState((s) => ({ ...s, loading: true }));
      try {
        const data = await fetcherRef.current(controller.signal);
        if (keyRef.current === key) setState({ data, error: null, status: null, loading: false });
      } catch (err) {
        if (controller.signal.aborted || keyRef.current !== key) return;
        setState((s) => ({ ...s, error: errorText(err), status: err instanceof ApiError ? err.status : null, loading: false }));
      }
    }, minGapMs);
    return { c, controller };
  }, [key]);

  useEffect(() => {
    if (key === null) return;
    coalescer.c.trigger();
    const off = hub.subscribe({
      change: (change) => {
        if (!refusedRef.current && touchedRef.current?.(change)) coalescer.c.trigger();
      },
      resync: () => coalescer.c.trigger(),
    });
    return () => {
      off();
      coalescer.controller.abort();
    };
  }, [coalescer]);

  return { ...state, refetch: () => coalescer.c.trigger() };
}

/** Changes that touch something of these topics. */
export const onTopics =
  (...topics: string[]): Touched =>
  (change) =>
    change.topics.some((t) => topics.includes(t));
