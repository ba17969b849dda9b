import type { Counts } from "../api/types";
import { BUCKETS, describeCounts, formatCount, segments } from "../lib/counts";

/** A small stacked bar and the numbers of ok / drifted / failed / unknown. */
export function HealthBar({ counts }: { counts: Counts }) {
  return (
    <div class="health" title={describeCounts(counts)}>
      <div class="bar" aria-hidden="true">
        {segments(counts).map((s) => (
          <span key={s.bucket} class={`seg b-${s.bucket}`} style={{ width: `${s.percent}%` }} />
        ))}
      </div>
      <span class="nums">
        {BUCKETS.map((b) => (
          <span key={b} class={`num b-${b}${counts[b] ? "" : " zero"}`} data-bucket={b}>
            <span class="sr">{b} </span>
            {formatCount(counts[b])}
          </span>
        ))}
      </span>
    </div>
  );
}

/** What the colors of the bars and numbers mean: shown once, above a table of health bars. */
export function HealthLegend() {
  return (
    <ul class="health-legend" aria-label="legend of the health colors">
      {BUCKETS.map((b) => (
        <li key={b} class={`legend-item b-${b}`}>
          {b}
        </li>
      ))}
    </ul>
  );
}
