import { describe, expect, it } from "vitest";
import { applyOutput, applyOutputs, emptyOutput, MAX_SHOWN } from "./output";

describe("applyOutput", () => {
  it("appends chunks per host in order and records the end", () => {
    let s = emptyOutput();
    s = applyOutput(s, "output", { host: "a", seq: 0, text: "one\n" });
    s = applyOutput(s, "output", { host: "b", seq: 0, text: "x" });
    s = applyOutput(s, "output", { host: "a", seq: 1, text: "two\n" });
    s = applyOutput(s, "end", { host: "a", outcome: "succeeded", exit_code: 0, chunks: 2, missing: 0 });
    expect(s.hosts.a).toEqual({ text: "one\ntwo\n", lastSeq: 1, truncated: false, dropped: false, end: { outcome: "succeeded", exit_code: 0, missing: 0 } });
    expect(s.hosts.b?.text).toBe("x");
    expect(s.total).toBe(9);
    expect(s.order).toEqual(["a", "b"]);
  });

  it("does not add a chunk twice when the stream resumes", () => {
    let s = applyOutput(emptyOutput(), "output", { host: "a", seq: 0, text: "one" });
    s = applyOutput(s, "output", { host: "a", seq: 0, text: "one" });
    expect(s.hosts.a?.text).toBe("one");
    expect(s.total).toBe(3);
  });

  it("keeps the tail of a long output and says so", () => {
    const s = applyOutput(applyOutput(emptyOutput(), "output", { host: "a", seq: 0, text: "x".repeat(MAX_SHOWN) }), "output", { host: "a", seq: 1, text: "END" });
    expect(s.hosts.a?.text.length).toBe(MAX_SHOWN);
    expect(s.hosts.a?.text.endsWith("END")).toBe(true);
    expect(s.hosts.a?.truncated).toBe(true);
    expect(s.total).toBe(MAX_SHOWN);
  });

  it("ignores events without a host and kinds it does not know", () => {
    const s = emptyOutput();
    expect(applyOutput(s, "output", { text: "x" })).toBe(s);
    expect(applyOutput(s, "done", { hosts: 2 })).toBe(s);
  });
});

describe("the total cap", () => {
  it("drops the text of the hosts that began first, never the one being written", () => {
    let s = emptyOutput();
    s = applyOutput(s, "output", { host: "a", seq: 0, text: "aaaa" }, 10);
    s = applyOutput(s, "output", { host: "b", seq: 0, text: "bbbb" }, 10);
    s = applyOutput(s, "output", { host: "c", seq: 0, text: "cccc" }, 10);
    expect(s.hosts.a).toMatchObject({ text: "", dropped: true });
    expect(s.hosts.b).toMatchObject({ text: "bbbb", dropped: false });
    expect(s.total).toBe(8);
    expect(s.order).toEqual(["b", "c"]);
    // a's own further output is kept again, as the newest
    s = applyOutput(s, "output", { host: "a", seq: 1, text: "AA" }, 10);
    expect(s.hosts.a).toMatchObject({ text: "AA", dropped: true });
    expect(s.order).toEqual(["b", "c", "a"]);
    // the oldest host writing more drops the next oldest instead of itself
    s = applyOutput(s, "output", { host: "b", seq: 1, text: "bb" }, 10);
    expect(s.hosts.b?.text).toBe("bbbbbb");
    expect(s.hosts.c).toMatchObject({ text: "", dropped: true });
    expect(s.total).toBeLessThanOrEqual(10);
  });

  it("applies a batch of events in one copy, as one at a time would", () => {
    const events = [
      { kind: "output", data: { host: "a", seq: 0, text: "1" } },
      { kind: "output", data: { host: "b", seq: 0, text: "2" } },
      { kind: "end", data: { host: "a", outcome: "failed", exit_code: 3 } },
      { kind: "done", data: { hosts: 2 } },
    ];
    const one = events.reduce((s, e) => applyOutput(s, e.kind, e.data), emptyOutput());
    expect(applyOutputs(emptyOutput(), events)).toEqual(one);
  });
});
