import { describe, expect, it } from "vitest";
import { describeCounts, formatCount, segments, sumCounts, totalOf, worst } from "./counts";

describe("health counts", () => {
  it("adds up and sums lists", () => {
    const a = { ok: 3, drifted: 1, failed: 0, unknown: 2 };
    expect(totalOf(a)).toBe(6);
    expect(sumCounts([a, { ok: 1, drifted: 0, failed: 4, unknown: 0 }])).toEqual({ ok: 4, drifted: 1, failed: 4, unknown: 2 });
  });

  it("names the worst bucket", () => {
    expect(worst({ ok: 5, drifted: 1, failed: 1, unknown: 0 })).toBe("failed");
    expect(worst({ ok: 5, drifted: 0, failed: 0, unknown: 1 })).toBe("unknown");
    expect(worst({ ok: 0, drifted: 0, failed: 0, unknown: 0 })).toBeNull();
  });

  it("makes bar segments that sum to 100 and keep a small bucket visible", () => {
    const segs = segments({ ok: 9999, drifted: 0, failed: 1, unknown: 0 });
    expect(segs.map((s) => s.bucket)).toEqual(["ok", "failed"]);
    expect(segs.reduce((a, s) => a + s.percent, 0)).toBeCloseTo(100, 5);
    expect(segs[1]?.percent).toBeGreaterThanOrEqual(1.9);
    expect(segments({ ok: 1, drifted: 1, failed: 1, unknown: 0 }).map((s) => s.percent)).toEqual([33.4, 33.3, 33.3]);
    expect(segments({ ok: 0, drifted: 0, failed: 0, unknown: 0 })).toEqual([]);
  });

  it("formats numbers and summaries", () => {
    expect(formatCount(10000)).toBe("10,000");
    expect(describeCounts({ ok: 9990, drifted: 7, failed: 3, unknown: 0 })).toBe("9,990 ok, 7 drifted, 3 failed");
    expect(describeCounts({ ok: 0, drifted: 0, failed: 0, unknown: 0 })).toBe("no services");
  });
});
