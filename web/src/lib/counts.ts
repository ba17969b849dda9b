import type { Bucket, Counts } from "../api/types";

export const BUCKETS: readonly Bucket[] = ["ok", "drifted", "failed", "unknown"];

export const emptyCounts = (): Counts => ({ ok: 0, drifted: 0, failed: 0, unknown: 0 });

export function totalOf(counts: Counts): number {
  return BUCKETS.reduce((sum, b) => sum + (counts[b] ?? 0), 0);
}

export function sumCounts(list: Iterable<Counts>): Counts {
  const out = emptyCounts();
  for (const c of list) for (const b of BUCKETS) out[b] += c[b] ?? 0;
  return out;
}

/** The worst bucket with anything in it: failed, then drifted, unknown, ok; null if empty. */
export function worst(counts: Counts): Bucket | null {
  for (const b of ["failed", "drifted", "unknown", "ok"] as const) if (counts[b] > 0) return b;
  return null;
}

export interface Segment {
  bucket: Bucket;
  count: number;
  percent: number;
}

/**
 * The bar's segments: non-empty buckets, widths in percent summing to exactly 100 (largest
 * remainder), each at least `min` percent so that one failure among 10,000 is still seen.
 */
export function segments(counts: Counts, min = 2): Segment[] {
  const total = totalOf(counts);
  if (total === 0) return [];
  const present = BUCKETS.filter((b) => counts[b] > 0);
  const raw = present.map((b) => Math.max((counts[b] / total) * 100, min));
  const scale = 100 / raw.reduce((a, b) => a + b, 0);
  const tenths = raw.map((r) => r * scale * 10);
  const floors = tenths.map(Math.floor);
  let left = 1000 - floors.reduce((a, b) => a + b, 0);
  const order = tenths.map((t, i) => [t - Math.floor(t), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (left <= 0) break;
    floors[i] = (floors[i] as number) + 1;
    left--;
  }
  return present.map((bucket, i) => ({ bucket, count: counts[bucket], percent: (floors[i] as number) / 10 }));
}

const numberFormat = new Intl.NumberFormat("en-US");

export function formatCount(n: number): string {
  return numberFormat.format(n);
}

/** `9,990 ok, 7 drifted, 3 failed` — the non-empty buckets; `no services` when none. */
export function describeCounts(counts: Counts): string {
  const parts = BUCKETS.filter((b) => counts[b] > 0).map((b) => `${formatCount(counts[b])} ${b}`);
  return parts.length ? parts.join(", ") : "no services";
}
