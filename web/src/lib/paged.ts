// Rows of a long list fetched from the server page by page, for a virtualized table: only the
// pages on show are fetched; a live change refetches those and forgets the others.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, errorText } from "../api/errors";
import { Coalescer } from "./coalesce";
import { useSession } from "./context";
import type { Touched } from "./query";
import { pagesOf, type Range } from "./window";

export interface Page<Row, Meta> {
  rows: Row[];
  total: number;
  meta: Meta;
}

export interface Paged<Row, Meta> {
  rowAt(index: number): Row | undefined;
  total: number | null;
  meta: Meta | undefined;
  error: string | null;
  status: number | null;
  show(range: Range): void;
  refetch(): void;
}

type Fetch<Row, Meta> = (offset: number, limit: number, signal: AbortSignal) => Promise<Page<Row, Meta>>;

/**
 * The requests in flight, by page. Each request of a page gets a new generation: only the
 * answer of the latest counts (an older one may come in later), and only it ends the loading.
 */
export class PageLoads {
  private latest = new Map<number, number>();
  private pending = new Set<number>();
  private next = 0;

  /** A request for `page` begins: its generation. */
  begin(page: number): number {
    const gen = ++this.next;
    this.latest.set(page, gen);
    this.pending.add(page);
    return gen;
  }

  /** Whether the answer of generation `gen` of `page` is still the one wanted. */
  current(page: number, gen: number): boolean {
    return this.latest.get(page) === gen;
  }

  /** The request of generation `gen` ended (answered or failed). */
  end(page: number, gen: number): void {
    if (this.current(page, gen)) this.pending.delete(page);
  }

  has(page: number): boolean {
    return this.pending.has(page);
  }
}

interface Store<Row, Meta> {
  key: string;
  pages: Map<number, Row[]>;
  loading: PageLoads;
  total: number | null;
  meta: Meta | undefined;
}

export function usePaged<Row, Meta>(key: string, pageSize: number, fetchPage: Fetch<Row, Meta>, touched?: Touched): Paged<Row, Meta> {
  const { hub } = useSession();
  const [, setVersion] = useState(0);
  // The last error, of the key it was for: another key starts without it.
  const [failure, setError] = useState<{ key: string; text: string; status: number | null } | null>(null);
  const error = failure?.key === key ? failure : null;
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;
  const touchedRef = useRef(touched);
  touchedRef.current = touched;
  const refusedRef = useRef(false);
  refusedRef.current = error?.status === 403; // a change does not ask again (see query.ts)
  // What is on show: the pages of the current key, or the last key's until the first arrives.
  const shown = useRef<Store<Row, Meta> | null>(null);
  const range = useRef<Range>({ start: 0, end: pageSize });

  const live = useMemo(() => {
    const controller = new AbortController();
    const store: Store<Row, Meta> = { key, pages: new Map(), loading: new PageLoads(), total: null, meta: undefined };
    // A refresh loads a page again even while it loads (that answer may predate the change):
    // the generations keep an older answer from overwriting a newer one.
    const load = async (page: number): Promise<void> => {
      const gen = store.loading.begin(page);
      try {
        const got = await fetchRef.current(page * pageSize, pageSize, controller.signal);
        if (controller.signal.aborted || !store.loading.current(page, gen)) return;
        store.pages.set(page, got.rows);
        store.total = got.total;
        store.meta = got.meta;
        shown.current = store;
        setError(null);
        setVersion((v) => v + 1);
      } catch (err) {
        if (controller.signal.aborted || !store.loading.current(page, gen)) return;
        setError({ key, text: errorText(err), status: err instanceof ApiError ? err.status : null });
      } finally {
        store.loading.end(page, gen);
      }
    };
    const refresh = new Coalescer(async () => {
      const wanted = pagesOf(range.current, pageSize);
      const pages = wanted.length ? wanted : [0];
      for (const p of [...store.pages.keys()]) if (!pages.includes(p)) store.pages.delete(p);
      await Promise.all(pages.map(load));
    });
    return { controller, store, load, refresh };
  }, [key, pageSize]);

  useEffect(() => {
    live.refresh.trigger();
    const off = hub.subscribe({
      change: (change) => {
        if (refusedRef.current || !touchedRef.current?.(change)) return;
        live.refresh.trigger();
      },
      resync: () => live.refresh.trigger(),
    });
    return () => {
      off();
      live.controller.abort();
    };
  }, [live]);

  const view = shown.current ?? live.store;
  return {
    rowAt: (i) => view.pages.get(Math.floor(i / pageSize))?.[i % pageSize],
    total: view.total,
    meta: view.meta,
    error: error?.text ?? null,
    status: error?.status ?? null,
    show(r: Range) {
      range.current = r;
      for (const p of pagesOf(r, pageSize)) {
        if (!live.store.pages.has(p) && !live.store.loading.has(p)) void live.load(p);
      }
    },
    refetch: () => live.refresh.trigger(),
  };
}
