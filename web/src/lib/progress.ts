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

/** Up to this many hosts, every host row of an action is shown. */
export const FEW_HOSTS = 50;
/** Up to this many hosts, every host's output is shown without asking. */
export const AUTO_OUTPUT_HOSTS = 10;
/** A batch of more rows than this is shown in a virtual table. */
export const VIRTUAL_ROWS = 100;

const SUMMARY_ORDER = ["succeeded", "failed", "rejected", "interrupted", "dispatched", "pending", "expired", "skipped", "cancelled"];
const FAILURES = new Set(["failed", "rejected", "interrupted"]);

/** "12 succeeded · 1 failed · 3 pending": how many hosts are in each outcome, in a fixed order. */
export function summary(hosts: HostResult[]): string {
  const counts = outcomes(hosts);
  const rank = (o: string) => {
    const i = SUMMARY_ORDER.indexOf(o);
    return i < 0 ? SUMMARY_ORDER.length : i;
  };
  return Object.keys(counts)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map((o) => `${counts[o]} ${o}`)
    .join(" · ");
}

/**
 * Whether a batch's host rows are shown before any click: always for an action of few hosts;
 * otherwise while the batch runs (a host dispatched) or once one of its hosts failed.
 */
export function openByDefault(batch: HostResult[], totalHosts: number): boolean {
  if (totalHosts <= FEW_HOSTS) return true;
  return batch.some((h) => h.outcome === "dispatched" || FAILURES.has(h.outcome));
}
