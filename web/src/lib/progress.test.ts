import { describe, expect, it } from "vitest";
import type { HostResult } from "../api/types";
import { byBatch, isOpen, outcomes } from "./progress";

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
