import { afterEach, describe, expect, it, vi } from "vitest";
import { Coalescer } from "./coalesce";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("Coalescer", () => {
  it("runs at most one at a time and queues one more for any number of triggers", async () => {
    const runs: ReturnType<typeof deferred>[] = [];
    const c = new Coalescer(() => {
      const d = deferred();
      runs.push(d);
      return d.promise;
    });
    c.trigger();
    c.trigger();
    c.trigger();
    c.trigger();
    expect(runs).toHaveLength(1);
    runs[0]?.resolve();
    await tick();
    expect(runs).toHaveLength(2);
    runs[1]?.resolve();
    await tick();
    expect(runs).toHaveLength(2);
  });

  it("goes on after a failed run", async () => {
    let calls = 0;
    const c = new Coalescer(async () => {
      calls++;
      if (calls === 1) throw new Error("boom");
    });
    c.trigger();
    c.trigger();
    await tick();
    await tick();
    expect(calls).toBe(2);
  });

  describe("with a minimum gap", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("starts runs at least the gap apart, however many triggers came", async () => {
      vi.useFakeTimers();
      const starts: number[] = [];
      const t0 = Date.now();
      const c = new Coalescer(async () => {
        starts.push(Date.now() - t0);
      }, 1000);
      c.trigger();
      await vi.advanceTimersByTimeAsync(10);
      for (let i = 0; i < 20; i++) {
        c.trigger();
        await vi.advanceTimersByTimeAsync(100);
      }
      await vi.advanceTimersByTimeAsync(2000);
      expect(starts.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < starts.length; i++) expect((starts[i] ?? 0) - (starts[i - 1] ?? 0)).toBeGreaterThanOrEqual(1000);
      // the triggers spread over 2 s: one run at 0, then at most one a second
      expect(starts.length).toBeLessThanOrEqual(4);
    });

    it("runs at once when the last start is longer ago than the gap", async () => {
      vi.useFakeTimers();
      let calls = 0;
      const c = new Coalescer(async () => {
        calls++;
      }, 1000);
      c.trigger();
      await vi.advanceTimersByTimeAsync(1500);
      c.trigger();
      await vi.advanceTimersByTimeAsync(0);
      expect(calls).toBe(2);
    });

    it("keeps at most one in flight while a run is slow", async () => {
      vi.useFakeTimers();
      let inFlight = 0;
      let most = 0;
      const c = new Coalescer(async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 3000));
        inFlight--;
      }, 1000);
      for (let i = 0; i < 10; i++) {
        c.trigger();
        await vi.advanceTimersByTimeAsync(500);
      }
      await vi.advanceTimersByTimeAsync(10_000);
      expect(most).toBe(1);
    });
  });
});
