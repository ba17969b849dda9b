import { describe, expect, it } from "vitest";
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
});
