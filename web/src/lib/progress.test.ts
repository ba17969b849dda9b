import { describe, expect, it } from "vitest";
import type { HostResult } from "../api/types";
import { byBatch, FEW_HOSTS, isOpen, openByDefault, outcomes, summary } from "./progress";

const h = (host: string, batch: number, outcome = "pending"): HostResult => ({
  host, batch, outcome, exit_code: null, started_at: null, finished_at: null, duration_s: null, output: "", sent_at: null,
});

describe("byBatch", () => {
  it("groups by batch in order, hosts by name", () => {
    const groups = byBatch([h("c", 1), h("b", 0), h("a", 0), h("d", 1)]);
    expect(groups.map((g) => g.map((x) => x.host))).toEqual([["a", "b"], ["c", "d"]]);
  });
});

describe("outcomes", () => {
  it("counts hosts per outcome", () => {
    expect(outcomes([h("a", 0, "succeeded"), h("b", 0, "succeeded"), h("c", 1)])).toEqual({ succeeded: 2, pending: 1 });
  });
});

describe("isOpen", () => {
  it("is true while an action may still change", () => {
    expect(["pending-approval", "running"].map(isOpen)).toEqual([true, true]);
    expect(["succeeded", "failed", "cancelled", "rejected"].map(isOpen)).toEqual([false, false, false, false]);
  });
});

describe("summary", () => {
  it("counts by outcome, succeeded and failed first, pending after", () => {
    const hosts = [h("p1", 0), h("s1", 0, "succeeded"), h("f1", 0, "failed"), h("s2", 0, "succeeded"), h("p2", 0), h("x", 0, "weird")];
    expect(summary(hosts)).toBe("2 succeeded · 1 failed · 2 pending · 1 weird");
  });

  it("is empty for no hosts", () => {
    expect(summary([])).toBe("");
  });
});

describe("openByDefault", () => {
  const many = FEW_HOSTS + 1;
  it("shows every batch of a small action", () => {
    expect(openByDefault([h("a", 0, "succeeded")], FEW_HOSTS)).toBe(true);
  });

  it("in a large action shows only batches that run or have failures", () => {
    expect(openByDefault([h("a", 0, "succeeded"), h("b", 0, "succeeded")], many)).toBe(false);
    expect(openByDefault([h("a", 0)], many)).toBe(false);
    expect(openByDefault([h("a", 0, "succeeded"), h("b", 0, "dispatched")], many)).toBe(true);
    expect(openByDefault([h("a", 0, "succeeded"), h("b", 0, "failed")], many)).toBe(true);
    expect(openByDefault([h("a", 0, "interrupted")], many)).toBe(true);
  });
});
