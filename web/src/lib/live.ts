// The one live connection to GET /api/v1/events: a small state machine over an EventSource.
//
//   connecting ──hello──▶ live ──error──▶ reconnecting ──hello──▶ live (+ resync)
//                                            │ failing for 30 s
//                                            ▼
//                                       disconnected ──hello──▶ live (+ resync)
//
// On every error the source is closed and a new one opened after a capped exponential backoff
// (0.5 s, 1 s, 2 s … 10 s): the browser's own retry would not back off. An `end` event (the
// credentials stopped being valid) counts as a failure, after the page is told why. Before the first hello
// the indicator says `reconnecting…` too: the three words are all the indicator ever shows.
//
// Stopped and started again (the tab was hidden a while, see pauseWhileHidden), it says
// `reconnecting…` until the new hello, then resyncs.
//
// An attempt that fails before its hello may be a refusal (a 401 once the session ended), which
// EventSource reports as a bare error: the connection then asks `handlers.check` (GET whoami)
// and retries only when that says so, rather than retrying, and being refused, forever.
import type { Change } from "../api/types";

export type ConnState = "live" | "reconnecting" | "disconnected";

export interface SourceLike {
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  onerror: ((event: Event) => void) | null;
  close(): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LiveHandlers {
  state(state: ConnState): void;
  change(change: Change): void;
  /** Connected again after a failure: changes may have been missed. */
  resync(): void;
  /** The server ended the stream (`event: end`): the credentials are no longer valid. */
  end?(reason: string): void;
  /**
   * An attempt failed before its hello: whether to keep trying (signed in, or the server cannot
   * be reached). False stops the connection for good. Without it, it always keeps trying.
   */
  check?(): Promise<boolean>;
}

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10_000;
export const GIVE_UP_MS = 30_000;

/** The wait before reconnect attempt `attempt` (0 for the first after a failure). */
export function backoffDelay(attempt: number, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS): number {
  return Math.min(cap, base * 2 ** Math.min(attempt, 30));
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];

/** A list that may be null: "possibly any" (missing counts as null too, the safe reading). */
const stringsOrAny = (value: unknown): string[] | null => (Array.isArray(value) ? strings(value) : null);

/** The data of a `change` event; null when it is not JSON of an object. */
export function parseChange(data: string): Change | null {
  try {
    const raw = JSON.parse(data) as Record<string, unknown> | null;
    if (!raw || typeof raw !== "object") return null;
    return {
      topics: strings(raw.topics),
      applications: stringsOrAny(raw.applications),
      hosts: stringsOrAny(raw.hosts),
      actions: strings(raw.actions),
    };
  } catch {
    return null;
  }
}

export class LiveConnection {
  private source: SourceLike | null = null;
  private current: ConnState = "reconnecting";
  private attempt = 0;
  private everLive = false;
  private retryTimer: unknown = null;
  private giveUpTimer: unknown = null;
  private failing = false;
  private stopped = true;
  private epoch = 0; // bumped by stop(): a check answered after it is ignored

  constructor(
    private readonly url: string,
    private readonly open: (url: string) => SourceLike,
    private readonly timers: Timers,
    private readonly handlers: LiveHandlers,
    private readonly giveUpMs = GIVE_UP_MS,
  ) {}

  get state(): ConnState {
    return this.current;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.setState("reconnecting");
    this.beginFailing();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.epoch++;
    this.source?.close();
    this.source = null;
    this.timers.clearTimeout(this.retryTimer);
    this.timers.clearTimeout(this.giveUpTimer);
    this.failing = false;
  }

  private connect(): void {
    this.retryTimer = null;
    const source = this.open(this.url);
    this.source = source;
    let greeted = false;
    source.addEventListener("hello", () => {
      if (this.source !== source) return;
      greeted = true;
      this.connected();
    });
    source.addEventListener("change", (event) => {
      if (this.source !== source) return;
      const change = parseChange(String(event.data));
      if (change) this.handlers.change(change);
    });
    source.addEventListener("end", (event) => {
      if (this.source !== source) return;
      let reason = "";
      try {
        reason = String((JSON.parse(String(event.data)) as { reason?: unknown }).reason ?? "");
      } catch {
        // no reason given
      }
      this.failed(true);
      this.handlers.end?.(reason);
    });
    source.onerror = () => {
      if (this.source === source) this.failed(greeted);
    };
  }

  private connected(): void {
    const again = this.everLive || this.attempt > 0;
    this.everLive = true;
    this.attempt = 0;
    this.failing = false;
    this.timers.clearTimeout(this.giveUpTimer);
    this.giveUpTimer = null;
    this.setState("live");
    if (again) this.handlers.resync();
  }

  /** The source failed; `greeted`: after its hello (so not refused at the door). */
  private failed(greeted: boolean): void {
    this.source?.close();
    this.source = null;
    if (this.stopped) return;
    this.beginFailing();
    if (this.current === "live") this.setState("reconnecting");
    const delay = backoffDelay(this.attempt++);
    const retry = () => {
      this.retryTimer = this.timers.setTimeout(() => {
        if (!this.stopped) this.connect();
      }, delay);
    };
    if (greeted || !this.handlers.check) return retry();
    const epoch = this.epoch;
    this.handlers.check().then(
      (keep) => {
        if (this.stopped || epoch !== this.epoch) return;
        if (keep) retry();
        else this.stop();
      },
      () => {
        if (!this.stopped && epoch === this.epoch) retry();
      },
    );
  }

  private beginFailing(): void {
    if (this.failing) return;
    this.failing = true;
    this.giveUpTimer = this.timers.setTimeout(() => {
      if (this.failing && !this.stopped) this.setState("disconnected");
    }, this.giveUpMs);
  }

  private setState(state: ConnState): void {
    if (state === this.current) return;
    this.current = state;
    this.handlers.state(state);
  }
}

/** Whether the page is hidden (another tab, minimized), and when that changes. */
export interface PageVisibility {
  hidden(): boolean;
  onChange(listener: () => void): () => void;
}

export const HIDDEN_GRACE_MS = 10_000;

/**
 * Closes the connection once the page has been hidden for `graceMs`, and opens it again when
 * the page is shown. Each tab's stream holds one of the browser's six HTTP/1.1 connections to
 * the server, so background tabs would otherwise starve the fetches of the one in use. Silent
 * while hidden (the indicator keeps its word); on return `reconnecting…`, then `live` and a
 * resync, which refetches the page. Returns the function that stops watching.
 */
export function pauseWhileHidden(
  conn: Pick<LiveConnection, "start" | "stop">,
  page: PageVisibility,
  timers: Timers,
  graceMs = HIDDEN_GRACE_MS,
): () => void {
  let timer: unknown = null;
  let paused = false;
  const update = () => {
    if (page.hidden()) {
      if (timer !== null || paused) return;
      timer = timers.setTimeout(() => {
        timer = null;
        paused = true;
        conn.stop();
      }, graceMs);
    } else {
      timers.clearTimeout(timer);
      timer = null;
      if (paused) {
        paused = false;
        conn.start();
      }
    }
  };
  update();
  const off = page.onChange(update);
  return () => {
    off();
    timers.clearTimeout(timer);
    timer = null;
  };
}

export interface LiveListener {
  change?(change: Change): void;
  resync?(): void;
}

/** Fans the connection's events out to the queries of the page on show. */
export class LiveHub {
  private listeners = new Set<LiveListener>();
  private stateListeners = new Set<(s: ConnState) => void>();
  state: ConnState = "reconnecting";

  readonly handlers: LiveHandlers = {
    state: (s) => {
      this.state = s;
      for (const l of [...this.stateListeners]) l(s);
    },
    change: (c) => {
      for (const l of [...this.listeners]) l.change?.(c);
    },
    resync: () => {
      for (const l of [...this.listeners]) l.resync?.();
    },
    end: (reason) => this.onEnd?.(reason),
  };

  /** Set by the composition root: what to do when the server ends the stream. */
  onEnd: ((reason: string) => void) | null = null;

  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener: (s: ConnState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }
}

export const CONNECTION_TEXT: Record<ConnState, string> = {
  live: "live",
  reconnecting: "reconnecting…",
  disconnected: "disconnected",
};
