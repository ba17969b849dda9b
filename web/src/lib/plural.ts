import { formatCount } from "./counts";

/** The noun for `n` of it: `host` for 1, else `hosts` (or the given plural). */
export function noun(n: number, singular: string, plural = `${singular}s`): string {
  return n === 1 ? singular : plural;
}

/** `1 host`, `0 hosts`, `10,000 hosts`: the count (grouped) and its noun. */
export function plural(n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${formatCount(n)} ${noun(n, singular, pluralForm)}`;
}
