import { describe, expect, it } from "vitest";
import type { Approval } from "../api/types";
import { mergeDecided, sortApprovals } from "./approvals";

const ap = (action_id: string, state: Approval["state"], requested_at: string): Approval => ({
  action_id, application: "a", environment: "e", kind: "stop", state, requested_by: "r", requested_at,
  open_until: requested_at, policies: [], votes: [], decided_at: null, decided_by: null, reason: null,
});

describe("sortApprovals", () => {
  it("puts pending first, oldest first, then the decided ones newest first", () => {
    const list = [
      ap("old-approved", "approved", "2026-01-01T00:00:00Z"),
      ap("new-pending", "pending", "2026-01-03T00:00:00Z"),
      ap("new-rejected", "rejected", "2026-01-04T00:00:00Z"),
      ap("old-pending", "pending", "2026-01-02T00:00:00Z"),
    ];
    expect(sortApprovals(list).map((a) => a.action_id)).toEqual(["old-pending", "new-pending", "new-rejected", "old-approved"]);
  });
});

describe("mergeDecided", () => {
  it("keeps what was decided here once the inbox drops it, preferring the server's copy", () => {
    const pending = ap("a1", "pending", "2026-01-01T00:00:00Z");
    const decidedHere = ap("a2", "approved", "2026-01-01T00:00:00Z");
    const stale = ap("a1", "approved", "2026-01-01T00:00:00Z");
    expect(mergeDecided([pending], [decidedHere, stale])).toEqual([pending, decidedHere]);
  });
});
