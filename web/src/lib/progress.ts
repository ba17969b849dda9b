import type { HostResult } from "../api/types";

/** Hosts grouped by their batch (the server's `batch` is from 0), in batch then name order. */
export function byBatch(hosts: HostResult[]): HostResult[][] {
  const groups: HostResult[][] = [];
  for (const h of hosts) (groups[h.batch] ??= []).push(h);
  return groups.filter(Boolean).map((g) => [...g].sort((a, b) => a.host.localeCompare(b.host)));
}

/** How many hosts are in each outcome: `{succeeded: 3, pending: 1}`. */
export function outcomes(hosts: HostResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of hosts) out[h.outcome] = (out[h.outcome] ?? 0) + 1;
  return out;
}

const FINAL = new Set(["succeeded", "failed", "cancelled", "expired", "rejected", "approval-expired"]);

/** Whether an action may still change (cancel makes sense). */
export function isOpen(state: string): boolean {
  return !FINAL.has(state);
}
