// A command's live output (GET /api/v1/actions/{id}/output, see server/output_feed.py):
//   event: output  data {"host", "seq", "text"}
//   event: end     data {"host", "outcome", "exit_code", "chunks", "missing"}
//   event: done    data {"hosts": n}      nothing more will come
//
// Kept per host (its tail, MAX_SHOWN characters) and in all (MAX_TOTAL characters: past that the
// text of the hosts that began output first is dropped, and they say so).

export interface HostOutput {
  text: string;
  lastSeq: number;
  truncated: boolean; // its beginning was cut to keep MAX_SHOWN
  dropped: boolean; // its text was dropped to keep the total under MAX_TOTAL
  end: { outcome: string; exit_code: number | null; missing: number } | null;
}

export interface OutputState {
  hosts: Record<string, HostOutput>;
  /** The hosts that hold text, oldest first: the next to drop. */
  order: string[];
  /** Characters held in all. */
  total: number;
}

export interface OutputEvent {
  kind: string;
  data: unknown;
}

export const MAX_SHOWN = 256 * 1024; // characters kept per host; the whole output is a link away
export const MAX_TOTAL = 4 * 1024 * 1024; // characters kept across hosts

export const emptyOutput = (): OutputState => ({ hosts: {}, order: [], total: 0 });

const blank = (): HostOutput => ({ text: "", lastSeq: -1, truncated: false, dropped: false, end: null });

/**
 * The state after some events (the state is copied once, however many there are); a chunk seen
 * before (a resumed stream) is not added twice.
 */
export function applyOutputs(state: OutputState, events: OutputEvent[], maxTotal = MAX_TOTAL): OutputState {
  let hosts: Record<string, HostOutput> | null = null;
  const order = [...state.order];
  let total = state.total;
  for (const { kind, data } of events) {
    const d = (data ?? {}) as Record<string, unknown>;
    const host = typeof d.host === "string" ? d.host : null;
    if (!host || (kind !== "output" && kind !== "end")) continue;
    hosts ??= { ...state.hosts };
    const current = hosts[host] ?? blank();
    if (kind === "end") {
      const end = {
        outcome: typeof d.outcome === "string" ? d.outcome : "",
        exit_code: typeof d.exit_code === "number" ? d.exit_code : null,
        missing: typeof d.missing === "number" ? d.missing : 0,
      };
      hosts[host] = { ...current, end };
      continue;
    }
    const seq = typeof d.seq === "number" ? d.seq : current.lastSeq + 1;
    if (seq <= current.lastSeq) continue;
    let text = current.text + (typeof d.text === "string" ? d.text : "");
    let truncated = current.truncated;
    if (text.length > MAX_SHOWN) {
      text = text.slice(text.length - MAX_SHOWN);
      truncated = true;
    }
    if (!current.text && text) order.push(host);
    total += text.length - current.text.length;
    hosts[host] = { ...current, text, lastSeq: seq, truncated };
    // Over the total: drop the oldest hosts' text, never that of the host just written.
    for (let i = 0; total > maxTotal && i < order.length; ) {
      const oldest = order[i] as string;
      const o = hosts[oldest];
      if (oldest === host || !o) {
        i++;
        continue;
      }
      total -= o.text.length;
      hosts[oldest] = { ...o, text: "", dropped: true };
      order.splice(i, 1);
    }
  }
  return hosts ? { hosts, order, total } : state;
}

/** The state after one event. */
export function applyOutput(state: OutputState, kind: string, data: unknown, maxTotal = MAX_TOTAL): OutputState {
  return applyOutputs(state, [{ kind, data }], maxTotal);
}
