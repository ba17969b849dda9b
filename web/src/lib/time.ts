/** `12 s ago`, `3 min ago`, `in 2 h`, from `iso` as seen at `now` (ms). */
export function relative(iso: string | null | undefined, now: number): string {
  if (!iso) return "—";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const diff = Math.round((now - at) / 1000);
  const text = span(Math.abs(diff));
  if (text === "now") return "just now";
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

function span(s: number): string {
  if (s < 1) return "now";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** A duration in seconds: `0.4 s`, `12 s`, `3 min 5 s`, `2 h 1 min`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 10) return `${Math.round(seconds * 10) / 10} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const m = Math.floor((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""}`;
}

/** `2026-11-23 12:00:05` in local time, for a title or a table cell. */
export function absolute(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A time typed as `2026-01-02T10:00` (a datetime-local input, local time) as ISO with the
 * zone the server wants; text that already has a zone is sent as it is. */
export function withZone(value: string): string {
  if (!value) return "";
  if (/(Z|[+-]\d\d:?\d\d)$/.test(value)) return value;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}
