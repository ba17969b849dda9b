import { describe, expect, it } from "vitest";
import { backoffDelay, LiveConnection, parseChange, pauseWhileHidden, type ConnState, type PageVisibility, type SourceLike, type Timers } from "./live";

class FakeSource implements SourceLike {
  listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  onerror: ((event: Event) => void) | null = null;
  closed = false;
  addEventListener(type: string, listener: (e: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  emit(type: string, data = "{}"): void {
    for (const l of this.listeners.get(type) ?? []) l({ data } as MessageEvent);
  }
  fail(): void {
    this.onerror?.(new Event("error"));
  }
  close(): void {
    this.closed = true;
  }
}

class FakeClock implements Timers {
  t = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.queue.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.queue = this.queue.filter((q) => q.id !== handle);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const first = this.queue[0];
      if (!first || first.at > end) break;
      this.queue.shift();
      this.t = first.at;
      first.fn();
    }
    this.t = end;
  }
}

function setup() {
  const clock = new FakeClock();
  const sources: FakeSource[] = [];
  const states: ConnState[] = [];
  const log: string[] = [];
  const conn = new LiveConnection(
    "/api/v1/events",
    () => {
      const s = new FakeSource();
      sources.push(s);
      return s;
    },
    clock,
    {
      state: (s) => states.push(s),
      change: (c) => log.push(`change:${c.topics.join(",")}`),
      resync: () => log.push("resync"),
    },
  );
  const last = () => sources[sources.length - 1] as FakeSource;
  return { clock, sources, states, log, conn, last };
}

describe("backoffDelay", () => {
  it("doubles from half a second and stops at ten", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((a) => backoffDelay(a))).toEqual([
      500, 1000, 2000, 4000, 8000, 10000, 10000, 10000,
    ]);
  });
});

describe("LiveConnection", () => {
  it("is live at hello and passes changes on, without a resync the first time", () => {
    const { conn, states, log, last } = setup();
    conn.start();
    expect(conn.state).toBe("reconnecting");
    last().emit("hello", '{"server_time":"2026-01-01T00:00:00Z"}');
    last().emit("change", '{"topics":["fleet"],"hosts":["h1"]}');
    expect(states).toEqual(["live"]);
    expect(log).toEqual(["change:fleet"]);
  });

  it("closes the source on error and opens a new one after the backoff, then resyncs", () => {
    const { conn, clock, sources, states, log, last } = setup();
    conn.start();
    last().emit("hello");
    last().fail();
    expect(sources[0]?.closed).toBe(true);
    expect(states).toEqual(["live", "reconnecting"]);
    clock.advance(499);
    expect(sources).toHaveLength(1);
    clock.advance(1);
    expect(sources).toHaveLength(2);
    last().fail();
    clock.advance(999);
    expect(sources).toHaveLength(2);
    clock.advance(1);
    expect(sources).toHaveLength(3);
    last().emit("hello");
    expect(states).toEqual(["live", "reconnecting", "live"]);
    expect(log).toEqual(["resync"]);
  });

  it("says disconnected after 30 s of failure and keeps retrying at most every 10 s", () => {
    const { conn, clock, sources, states, last } = setup();
    conn.start();
    last().emit("hello");
    last().fail();
    for (let i = 0; i < 12; i++) {
      clock.advance(10_000);
      last().fail();
    }
    expect(states).toEqual(["live", "reconnecting", "disconnected"]);
    expect(sources.length).toBeGreaterThan(8);
    clock.advance(10_000);
    last().emit("hello");
    expect(conn.state).toBe("live");
  });

  it("resets the backoff once live again", () => {
    const { conn, clock, sources, last } = setup();
    conn.start();
    for (let i = 0; i < 4; i++) {
      last().fail();
      clock.advance(backoffDelay(i));
    }
    last().emit("hello");
    last().fail();
    const before = sources.length;
    clock.advance(500);
    expect(sources.length).toBe(before + 1);
  });

  it("ignores events of a source it has given up on, and stops for good", () => {
    const { conn, clock, sources, states, log, last } = setup();
    conn.start();
    const old = last();
    old.fail();
    old.emit("hello");
    old.emit("change", '{"topics":["fleet"]}');
    expect(states).toEqual([]);
    expect(log).toEqual([]);
    conn.stop();
    clock.advance(60_000);
    expect(sources).toHaveLength(1);
  });
});

describe("an end event", () => {
  it("closes the source, reconnects later and says why", () => {
    const ended: string[] = [];
    const clock = new FakeClock();
    const sources: FakeSource[] = [];
    const conn = new LiveConnection("/e", () => (sources.push(new FakeSource()), sources[sources.length - 1] as FakeSource), clock, {
      state: () => undefined,
      change: () => undefined,
      resync: () => undefined,
      end: (r) => ended.push(r),
    });
    conn.start();
    sources[0]?.emit("hello");
    sources[0]?.emit("end", '{"reason":"the session ended"}');
    expect(ended).toEqual(["the session ended"]);
    expect(sources[0]?.closed).toBe(true);
    expect(conn.state).toBe("reconnecting");
    clock.advance(500);
    expect(sources).toHaveLength(2);
  });
});

describe("parseChange", () => {
  it("fills in missing lists and drops what is not a string", () => {
    expect(parseChange('{"topics":["actions"],"actions":["a1",3],"applications":[],"hosts":["h1"]}')).toEqual({
      topics: ["actions"],
      applications: [],
      hosts: ["h1"],
      actions: ["a1"],
    });
    expect(parseChange("not json")).toBeNull();
  });

  it("keeps null (possibly any) apart from [] (none), and reads a missing list as null", () => {
    expect(parseChange('{"topics":["fleet"],"applications":null,"hosts":[]}')).toEqual({
      topics: ["fleet"],
      applications: null,
      hosts: [],
      actions: [],
    });
    expect(parseChange('{"topics":["fleet"]}')).toMatchObject({ applications: null, hosts: null });
  });
});

describe("a failure before hello", () => {
  const flush = () => new Promise((r) => setTimeout(r, 0));

  function withCheck(answers: (boolean | Error)[]) {
    const clock = new FakeClock();
    const sources: FakeSource[] = [];
    let checks = 0;
    const conn = new LiveConnection("/e", () => (sources.push(new FakeSource()), sources[sources.length - 1] as FakeSource), clock, {
      state: () => undefined,
      change: () => undefined,
      resync: () => undefined,
      check: () => {
        const a = answers[checks++] ?? true;
        return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
      },
    });
    const last = () => sources[sources.length - 1] as FakeSource;
    return { clock, sources, conn, last, checks: () => checks };
  }

  it("asks whether to go on, and stops for good when told not to (signed out)", async () => {
    const { clock, sources, conn, last, checks } = withCheck([true, false]);
    conn.start();
    last().fail();
    expect(checks()).toBe(1);
    await flush();
    clock.advance(500);
    expect(sources).toHaveLength(2);
    last().fail();
    await flush();
    expect(checks()).toBe(2);
    clock.advance(60_000);
    expect(sources).toHaveLength(2);
  });

  it("keeps trying when the check itself fails", async () => {
    const { clock, sources, conn, last } = withCheck([new Error("unreachable")]);
    conn.start();
    last().fail();
    await flush();
    clock.advance(500);
    expect(sources).toHaveLength(2);
  });

  it("does not ask after a hello: the stream was accepted", () => {
    const { clock, sources, conn, last, checks } = withCheck([false]);
    conn.start();
    last().emit("hello");
    last().fail();
    expect(checks()).toBe(0);
    clock.advance(500);
    expect(sources).toHaveLength(2);
  });

  it("ignores an answer that comes after stop", async () => {
    const { clock, sources, conn, last } = withCheck([true]);
    conn.start();
    last().fail();
    conn.stop();
    await flush();
    clock.advance(60_000);
    expect(sources).toHaveLength(1);
  });
});

class FakePage implements PageVisibility {
  isHidden = false;
  private listeners = new Set<() => void>();
  hidden(): boolean {
    return this.isHidden;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(hidden: boolean): void {
    this.isHidden = hidden;
    for (const l of [...this.listeners]) l();
  }
}

describe("pauseWhileHidden", () => {
  it("closes the stream silently after 10 s hidden and reconnects, then resyncs, when shown", () => {
    const { conn, clock, sources, states, log, last } = setup();
    const page = new FakePage();
    pauseWhileHidden(conn, page, clock);
    conn.start();
    last().emit("hello");
    page.set(true);
    clock.advance(9_999);
    expect(sources[0]?.closed).toBe(false);
    clock.advance(1);
    expect(sources[0]?.closed).toBe(true);
    // silent: no state change, and no retry or give-up while paused
    clock.advance(120_000);
    expect(states).toEqual(["live"]);
    expect(sources).toHaveLength(1);
    page.set(false);
    expect(sources).toHaveLength(2);
    expect(states).toEqual(["live", "reconnecting"]);
    last().emit("hello");
    expect(states).toEqual(["live", "reconnecting", "live"]);
    expect(log).toEqual(["resync"]);
  });

  it("keeps the stream when the page is shown again within the grace", () => {
    const { conn, clock, sources, last } = setup();
    const page = new FakePage();
    pauseWhileHidden(conn, page, clock);
    conn.start();
    last().emit("hello");
    page.set(true);
    clock.advance(5_000);
    page.set(false);
    page.set(true);
    clock.advance(9_000);
    expect(sources[0]?.closed).toBe(false);
    clock.advance(1_000);
    expect(sources[0]?.closed).toBe(true);
  });

  it("says disconnected again only after 30 s of failing after the return", () => {
    const { conn, clock, states, last } = setup();
    const page = new FakePage();
    pauseWhileHidden(conn, page, clock);
    conn.start();
    last().emit("hello");
    page.set(true);
    clock.advance(10_000);
    page.set(false);
    for (let i = 0; i < 4; i++) {
      last().fail();
      clock.advance(10_000);
    }
    expect(states).toEqual(["live", "reconnecting", "disconnected"]);
  });

  it("pauses a page that starts hidden, and stops watching when disposed", () => {
    const { conn, clock, sources } = setup();
    const page = new FakePage();
    page.isHidden = true;
    const dispose = pauseWhileHidden(conn, page, clock);
    conn.start();
    clock.advance(10_000);
    expect(sources[0]?.closed).toBe(true);
    dispose();
    page.set(false);
    expect(sources).toHaveLength(1);
  });
});
