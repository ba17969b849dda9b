import { describe, expect, it } from "vitest";
import { duration, relative, withZone } from "./time";

const now = Date.parse("2026-01-01T12:00:00Z");

describe("relative", () => {
  it("says how long ago, in the largest whole unit", () => {
    expect(relative("2026-01-01T11:59:48Z", now)).toBe("12 s ago");
    expect(relative("2026-01-01T11:57:00Z", now)).toBe("3 min ago");
    expect(relative("2026-01-01T09:00:00Z", now)).toBe("3 h ago");
    expect(relative("2025-12-29T12:00:00Z", now)).toBe("3 d ago");
    expect(relative("2026-01-01T12:00:00Z", now)).toBe("just now");
  });
  it("says when, for the future", () => {
    expect(relative("2026-01-01T12:10:00Z", now)).toBe("in 10 min");
  });
  it("shows a dash for nothing and the text for what is not a time", () => {
    expect(relative(null, now)).toBe("—");
    expect(relative("soon", now)).toBe("soon");
  });
});

describe("duration", () => {
  it("keeps tenths below ten seconds and whole units above", () => {
    expect([0.42, 12.4, 185, 7260, null].map(duration)).toEqual(["0.4 s", "12 s", "3 min 5 s", "2 h 1 min", "—"]);
  });
});

describe("withZone", () => {
  it("adds the zone to a local time and keeps one that has it", () => {
    expect(withZone("2026-01-02T10:00:00Z")).toBe("2026-01-02T10:00:00Z");
    expect(withZone("2026-01-02T10:00+02:00")).toBe("2026-01-02T10:00+02:00");
    expect(withZone("2026-01-02T10:00")).toBe(new Date(2026, 0, 2, 10, 0).toISOString());
    expect(withZone("")).toBe("");
  });
});
