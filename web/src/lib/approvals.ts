import type { Approval } from "../api/types";

/** Pending first, the oldest request first among them (it closes soonest); decided ones newest
 * first. */
export function sortApprovals(list: Approval[]): Approval[] {
  return [...list].sort((a, b) => {
    const pa = a.state === "pending" ? 0 : 1;
    const pb = b.state === "pending" ? 0 : 1;
    if (pa !== pb) return pa - pb;
    return pa === 0 ? a.requested_at.localeCompare(b.requested_at) : b.requested_at.localeCompare(a.requested_at);
  });
}

/** The server's list, and after it those decided on this page that it no longer holds (the
 * inbox lists only what is still to decide); the server's copy wins where it has one. */
export function mergeDecided(list: Approval[], decided: Approval[]): Approval[] {
  const have = new Set(list.map((a) => a.action_id));
  return [...list, ...decided.filter((a) => !have.has(a.action_id))];
}
