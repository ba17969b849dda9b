// A command's live output (GET /api/v1/actions/{id}/output, see server/output_feed.py):
//   event: output  data {"host", "seq", "text"}
//   event: end     data {"host", "outcome", "exit_code", "chunks", "missing"}
//   event: done    data {"hosts": n}      nothing more will come

export interface HostOutput {
  text: string;
  lastSeq: number;
  truncated: boolean;
  end: { outcome: string; exit_code: number | null; missing: number } | null;
}

export type OutputState = Record<string, HostOutput>;

export const MAX_SHOWN = 256 * 1024; // characters kept per host; the whole output is a link away

const blank = (): HostOutput => ({ text: "", lastSeq: -1, truncated: false, end: null });

/** The state after one event; a chunk seen before (a resumed stream) is not added twice. */
export function applyOutput(state: OutputState, kind: string, data: unknown): OutputState {
  const d = (data ?? {}) as Record<string, unknown>;
  const host = typeof d.host === "string" ? d.host : null;
  if (!host) return state;
  const current = state[host] ?? blank();
  if (kind === "output") {
    const seq = typeof d.seq === "number" ? d.seq : current.lastSeq + 1;
    if (seq <= current.lastSeq) return state;
    let text = current.text + (typeof d.text === "string" ? d.text : "");
    let truncated = current.truncated;
    if (text.length > MAX_SHOWN) {
      text = text.slice(text.length - MAX_SHOWN);
      truncated = true;
    }
    return { ...state, [host]: { ...current, text, lastSeq: seq, truncated } };
  }
  if (kind === "end") {
    const end = {
      outcome: typeof d.outcome === "string" ? d.outcome : "",
      exit_code: typeof d.exit_code === "number" ? d.exit_code : null,
      missing: typeof d.missing === "number" ? d.missing : 0,
    };
    return { ...state, [host]: { ...current, end } };
  }
  return state;
}
