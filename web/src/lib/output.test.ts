import { describe, expect, it } from "vitest";
import { applyOutput, MAX_SHOWN, type OutputState } from "./output";

describe("applyOutput", () => {
  it("appends chunks per host in order and records the end", () => {
    let s: OutputState = {};
    s = applyOutput(s, "output", { host: "a", seq: 0, text: "one\n" });
    s = applyOutput(s, "output", { host: "b", seq: 0, text: "x" });
    s = applyOutput(s, "output", { host: "a", seq: 1, text: "two\n" });
    s = applyOutput(s, "end", { host: "a", outcome: "succeeded", exit_code: 0, chunks: 2, missing: 0 });
    expect(s.a).toEqual({ text: "one\ntwo\n", lastSeq: 1, truncated: false, end: { outcome: "succeeded", exit_code: 0, missing: 0 } });
    expect(s.b?.text).toBe("x");
  });

  it("does not add a chunk twice when the stream resumes", () => {
    let s = applyOutput({}, "output", { host: "a", seq: 0, text: "one" });
    s = applyOutput(s, "output", { host: "a", seq: 0, text: "one" });
    expect(s.a?.text).toBe("one");
  });

  it("keeps the tail of a long output and says so", () => {
    const s = applyOutput(applyOutput({}, "output", { host: "a", seq: 0, text: "x".repeat(MAX_SHOWN) }), "output", { host: "a", seq: 1, text: "END" });
    expect(s.a?.text.length).toBe(MAX_SHOWN);
    expect(s.a?.text.endsWith("END")).toBe(true);
    expect(s.a?.truncated).toBe(true);
  });

  it("ignores events without a host and kinds it does not know", () => {
    const s = {};
    expect(applyOutput(s, "output", { text: "x" })).toBe(s);
    expect(applyOutput(s, "done", { hosts: 2 })).toBe(s);
  });
});
