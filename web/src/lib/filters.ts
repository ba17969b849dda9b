// Filters live in the query string, so every page with its filters is a link to share.

export type Filters<K extends string> = Record<K, string>;

/** The filters `defaults` names, read from a query string; what is missing keeps its default. */
export function readFilters<K extends string>(search: string, defaults: Filters<K>): Filters<K> {
  const params = new URLSearchParams(search);
  const out = { ...defaults };
  for (const key of Object.keys(defaults) as K[]) {
    const value = params.get(key);
    if (value !== null) out[key] = value;
  }
  return out;
}

/** The query string (with its `?`, or "") of `values`, in the order of `defaults`, leaving
 * out what equals its default. Values are kept as typed (the inputs show them back), blanks
 * too: `trimmed` is for the request. */
export function writeFilters<K extends string>(values: Filters<K>, defaults: Filters<K>): string {
  const params = new URLSearchParams();
  for (const key of Object.keys(defaults) as K[]) {
    const value = values[key];
    if (value !== defaults[key]) params.set(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export type Labels = Record<string, string>;

/** `k=v,k2=v2` as a record; throws with the offending part when one is not `k=v`. */
export function parseLabels(text: string): Labels {
  const labels: Labels = {};
  for (const part of text.split(",")) {
    const item = part.trim();
    if (!item) continue;
    const eq = item.indexOf("=");
    if (eq <= 0) throw new Error(`label filter ${JSON.stringify(item)}: write key=value`);
    labels[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return labels;
}

/** The filters as sent to the server: without leading or trailing blanks. */
export function trimmed<K extends string>(values: Filters<K>): Filters<K> {
  const out = { ...values };
  for (const key of Object.keys(out) as K[]) out[key] = out[key].trim() as Filters<K>[K];
  return out;
}

/** Why a label filter is not valid, or null. */
export function labelProblem(text: string): string | null {
  try {
    parseLabels(text);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Adds `values` to `seen` and answers all of it, sorted: the options of a filter whose values
 * come from the filtered answer, so that choosing one does not hide the others.
 */
export function remember(seen: Set<string>, values: Iterable<string>): string[] {
  for (const v of values) if (v) seen.add(v);
  return [...seen].sort();
}
