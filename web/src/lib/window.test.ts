import { describe, expect, it } from "vitest";
import { pagesOf, visibleRange } from "./window";

describe("visibleRange", () => {
  it("covers the viewport plus overscan, within the list", () => {
    expect(visibleRange(0, 300, 30, 10000, 5)).toEqual({ start: 0, end: 16 });
    expect(visibleRange(3000, 300, 30, 10000, 5)).toEqual({ start: 95, end: 116 });
    expect(visibleRange(299_700, 300, 30, 10000, 5)).toEqual({ start: 9985, end: 10000 });
  });
  it("renders nothing for an empty list and clamps a scroll past the end", () => {
    expect(visibleRange(0, 300, 30, 0)).toEqual({ start: 0, end: 0 });
    expect(visibleRange(1e9, 300, 30, 20, 2)).toEqual({ start: 17, end: 20 });
  });
  it("never puts more than a viewport and the overscan in the DOM", () => {
    const r = visibleRange(123_456, 600, 28, 10000, 8);
    expect(r.end - r.start).toBeLessThanOrEqual(Math.ceil(600 / 28) + 1 + 16);
  });
});

describe("pagesOf", () => {
  it("lists the pages a range spans", () => {
    expect(pagesOf({ start: 95, end: 116 }, 100)).toEqual([0, 1]);
    expect(pagesOf({ start: 0, end: 100 }, 100)).toEqual([0]);
    expect(pagesOf({ start: 0, end: 0 }, 100)).toEqual([]);
  });
});
