import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { get, post } from "../api/client";
import { errorText } from "../api/errors";
import type { Action, Approval, HostResult } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { appHref, hostHref, Link } from "../components/Link";
import { VirtualTable } from "../components/VirtualTable";
import { useSession } from "../lib/context";
import { useNow, useTitle } from "../lib/hooks";
import { applyOutputs, emptyOutput, type HostOutput, type OutputEvent, type OutputState } from "../lib/output";
import { may } from "../lib/permissions";
import { plural } from "../lib/plural";
import { AUTO_OUTPUT_HOSTS, byBatch, FEW_HOSTS, isOpen, openByDefault, outcomes, summary, VIRTUAL_ROWS } from "../lib/progress";
import { useQuery, type Touched } from "../lib/query";
import { absolute, duration, relative } from "../lib/time";

export function ActionPage({ id }: { id: string }) {
  useTitle(`Action ${id}`);
  const { who } = useSession();
  const now = useNow(5_000);
  const path = `/api/v1/actions/${encodeURIComponent(id)}`;
  const touched: Touched = (c) => c.actions.includes(id) || (c.topics.includes("approvals") && !c.actions.length);
  // A running rollout changes many times a second: fetched at most once a second.
  const q = useQuery<Action>(path, (s) => get(path, s), touched, REFETCH_GAP_MS);
  const [actionError, setActionError] = useState<string | null>(null);
  const a = q.data?.id === id ? q.data : null;
  const output = useOutput(a?.command ? id : null);
  // The batches opened or closed by the user, and the hosts whose output they asked for.
  const [batchOpen, setBatchOpen] = useState<Record<number, boolean>>({});
  const [shownOutput, setShownOutput] = useState<ReadonlySet<string>>(new Set());
  useEffect(() => {
    setBatchOpen({});
    setShownOutput(new Set());
  }, [id]);
  const batches = useMemo(() => byBatch(a?.hosts ?? []), [a?.hosts]);

  const act = async (what: string, body: unknown) => {
    setActionError(null);
    try {
      await post<Action>(`${path}/${what}`, body);
      q.refetch();
    } catch (err) {
      setActionError(errorText(err));
    }
  };

  if (!a)
    return (
      <main id="main">
        {/* the crumbs as below, so that the h1 (focused on arrival) is the same element then */}
        <p class="crumbs">
          <Link href="/actions">Actions</Link> /
        </p>
        <h1 tabIndex={-1}>Action {id}</h1>
        <ErrorAlert errors={[q.error]} />
        {!q.error && <p class="muted">Loading…</p>}
      </main>
    );

  // As recorded at the request (null: none, as on the server); undefined when not said.
  const canAct = may(who, "act", a.application, a.environment !== undefined ? a.environment : a.approval?.environment);
  const counts = outcomes(a.hosts);
  return (
    <main id="main">
      <p class="crumbs">
        <Link href="/actions">Actions</Link> /
      </p>
      <h1 tabIndex={-1}>
        {a.kind === "command" && a.command ? `command ${a.command.name}` : a.kind} of <Link href={appHref(a.application)}>{a.application}</Link>
      </h1>
      <ErrorAlert errors={[q.error, actionError]} />
      <dl class="facts">
        <dt>Id</dt>
        <dd>
          <code>{a.id}</code>
        </dd>
        <dt>State</dt>
        <dd>
          <span class={`state s-${a.state}`} data-testid="action-state">
            {a.state}
          </span>
        </dd>
        <dt>Rollout</dt>
        <dd>
          <span data-testid="rollout-state">{a.rollout_state ?? "—"}</span>
          {a.halt_reason && <span class="muted"> — {a.halt_reason}</span>}
        </dd>
        <dt>Services</dt>
        <dd>{a.services.length ? a.services.join(", ") : "every service"}</dd>
        <dt>Requested</dt>
        <dd>
          by {a.requested_by} <time title={absolute(a.created_at)}>{relative(a.created_at, now)}</time>
        </dd>
        <dt>Deadline</dt>
        <dd title={absolute(a.deadline)}>{relative(a.deadline, now)}</dd>
        {a.strategy && (
          <>
            <dt>Strategy</dt>
            <dd>{describeStrategy(a.strategy)}</dd>
          </>
        )}
        {a.command && (
          <>
            <dt>Runs</dt>
            <dd>
              <code>{a.command.argv.join(" ")}</code>
              {a.command.run_as && <span class="muted"> as {a.command.run_as}</span>}
            </dd>
          </>
        )}
        {a.cancel && (
          <>
            <dt>Cancelled</dt>
            <dd>
              by {a.cancel.requested_by}
              {a.cancel.abort_running && ", running hosts aborted"}
            </dd>
          </>
        )}
        <dt>Hosts</dt>
        <dd>
          {Object.entries(counts)
            .map(([o, n]) => `${n} ${o}`)
            .join(", ") || "none"}
        </dd>
      </dl>
      {a.approval && <ApprovalBox approval={a.approval} now={now} canApprove={may(who, "approve", a.application, a.approval.environment) && who?.name !== a.approval.requested_by && !a.approval.votes.some((v) => v.approver === who?.name)} onDecide={act} />}
      {canAct && isOpen(a.state) && <CancelBox onCancel={(abort) => act("cancel", { abort_running: abort })} />}
      <section>
        <h2>Hosts by batch</h2>
        {batches.map((batch, i) => {
          const n = (batch[0]?.batch ?? i) + 1;
          return (
            <BatchView
              key={n}
              n={n}
              hosts={batch}
              now={now}
              big={a.hosts.length > FEW_HOSTS}
              open={batchOpen[n] ?? openByDefault(batch, a.hosts.length)}
              onToggle={(open) => setBatchOpen((o) => ({ ...o, [n]: open }))}
              output={a.command && a.hosts.length > AUTO_OUTPUT_HOSTS ? { shown: shownOutput, toggle: (host) => setShownOutput((s) => toggled(s, host)) } : null}
              result={!a.command}
            />
          );
        })}
      </section>
      {a.command && <OutputSection action={a} output={output} shown={a.hosts.length <= AUTO_OUTPUT_HOSTS ? null : shownOutput} />}
    </main>
  );
}

const REFETCH_GAP_MS = 1_000;
const ROW = 36;

const toggled = (set: ReadonlySet<string>, item: string): ReadonlySet<string> => {
  const next = new Set(set);
  if (!next.delete(item)) next.add(item);
  return next;
};

/** Which hosts' output the user asked for; null when every host's is shown anyway. */
interface OutputToggle {
  shown: ReadonlySet<string>;
  toggle(host: string): void;
}

/**
 * One batch: its counts always, its host rows when open. A small action's batches are always
 * open; a large one's can be opened and closed, and a long one is a virtual table.
 */
/**
 * `result`: the action is no command (restart, start, stop): each host's row shows its `output`
 * (what the agent reported), as a command's is in the output pane instead.
 */
function BatchView({ n, hosts, now, big, open, onToggle, output, result }: { n: number; hosts: HostResult[]; now: number; big: boolean; open: boolean; onToggle(open: boolean): void; output: OutputToggle | null; result: boolean }) {
  const shown = !big || open;
  const head = (
    <tr aria-rowindex={1}>
      <th scope="col">Host</th>
      <th scope="col">Outcome</th>
      <th scope="col" class="num">Exit code</th>
      <th scope="col">Started</th>
      <th scope="col">Finished</th>
      <th scope="col" class="num">Duration</th>
      {output && <th scope="col">Output</th>}
      {result && (
        <th scope="col" class="result">
          Result
        </th>
      )}
    </tr>
  );
  const row = (h: HostResult, index?: number) => <HostRow key={h.host} h={h} now={now} index={index} output={output} result={result} />;
  return (
    <section class="batch" data-testid={`batch-${n}`} aria-labelledby={`batch-h-${n}`}>
      <div class="batch-head">
        <h3 id={`batch-h-${n}`}>Batch {n}</h3>
        <span class="batch-summary">{summary(hosts) || "no hosts"}</span>
        {big && (
          <button type="button" class="small" aria-expanded={open} aria-controls={`batch-rows-${n}`} onClick={() => onToggle(!open)}>
            {open ? "hide hosts" : `show ${plural(hosts.length, "host")}`}
          </button>
        )}
      </div>
      <div id={`batch-rows-${n}`}>
        {shown &&
          (hosts.length > VIRTUAL_ROWS ? (
            <VirtualTable testid={`batch-table-${n}`} label={`hosts of batch ${n}`} className="batch-rows" columns={6 + (output ? 1 : 0) + (result ? 1 : 0)} total={hosts.length} rowHeight={ROW} head={head} row={(i) => row(hosts[i] as HostResult, i + 2)} />
          ) : (
            <div class="table-wrap">
              <table class="fixed">
                <thead>{head}</thead>
                <tbody>{hosts.map((h) => row(h))}</tbody>
              </table>
            </div>
          ))}
      </div>
    </section>
  );
}

function HostRow({ h, now, index, output, result }: { h: HostResult; now: number; index?: number; output: OutputToggle | null; result: boolean }) {
  const shown = output?.shown.has(h.host) ?? false;
  return (
    <tr data-testid={`host-result-${h.host}`} data-outcome={h.outcome} aria-rowindex={index}>
      <th scope="row">
        <Link href={hostHref(h.host)}>{h.host}</Link>
      </th>
      <td>
        <span class={`outcome o-${h.outcome}`}>{h.outcome}</span>
        {h.abort_requested_at && <span class="muted"> (abort {h.abort_sent_at ? "sent" : "requested"})</span>}
      </td>
      <td class="num">{h.exit_code ?? "—"}</td>
      <td title={absolute(h.started_at)}>{h.started_at ? relative(h.started_at, now) : "—"}</td>
      <td title={absolute(h.finished_at)}>{h.finished_at ? relative(h.finished_at, now) : "—"}</td>
      <td class="num">{duration(h.duration_s)}</td>
      {output && (
        <td>
          <button type="button" class="small" aria-pressed={shown} aria-label={`${shown ? "hide" : "show"} output of ${h.host}`} onClick={() => output.toggle(h.host)}>
            {shown ? "hide output" : "show output"}
          </button>
        </td>
      )}
      {result && (
        <td class="result">
          {h.output.trim() ? (
            // clamped to a few lines; the whole text in the tooltip
            <div class="result-text" data-testid={`host-output-${h.host}`} title={h.output}>
              {h.output.trim()}
            </div>
          ) : (
            <span class="muted">—</span>
          )}
        </td>
      )}
    </tr>
  );
}

/** The output of every host (an action of few hosts) or of those in `shown`. */
function OutputSection({ action, output, shown }: { action: Action; output: OutputState; shown: ReadonlySet<string> | null }) {
  const hosts = shown ? action.hosts.filter((h) => shown.has(h.host)) : action.hosts;
  return (
    <section>
      <h2>Output</h2>
      {hosts.length === 0 && <p class="muted">Choose “show output” on a host to follow its output here.</p>}
      {hosts.map((h) => (
        <HostOutputView key={h.host} actionId={action.id} h={h} live={output.hosts[h.host]} />
      ))}
    </section>
  );
}

function HostOutputView({ actionId, h, live }: { actionId: string; h: HostResult; live: HostOutput | undefined }) {
  const text = live?.text || h.output;
  return (
    <div class="output">
      <h3>
        {h.host} <span class={`outcome o-${live?.end?.outcome ?? h.outcome}`}>{live?.end?.outcome ?? h.outcome}</span>{" "}
        <a class="small" href={`/api/v1/actions/${encodeURIComponent(actionId)}/hosts/${encodeURIComponent(h.host)}/output`} target="_blank" rel="noopener">
          whole output
        </a>
      </h3>
      {live?.dropped ? (
        <p class="muted small">Earlier output was dropped to save memory (many hosts wrote much); the whole output is a link away.</p>
      ) : (
        live?.truncated && <p class="muted small">Only the end is shown.</p>
      )}
      <pre data-testid={`output-${h.host}`} tabIndex={0} aria-label={`output of ${h.host}`}>
        {text}
      </pre>
    </div>
  );
}

const OUTPUT_FLUSH_MS = 100;

/** Follows the command's output while the page shows it; the browser resumes it after a drop
 * (Last-Event-ID), and it is closed at `done`. */
function useOutput(id: string | null): OutputState {
  const [state, setState] = useState<OutputState>(emptyOutput);
  const pending = useRef<OutputEvent[]>([]);
  useEffect(() => {
    setState(emptyOutput());
    pending.current = [];
    if (!id) return;
    // Events are applied in bunches, every OUTPUT_FLUSH_MS: one copy and one render for many.
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      const events = pending.current;
      pending.current = [];
      setState((s) => applyOutputs(s, events));
    };
    const source = new EventSource(`/api/v1/actions/${encodeURIComponent(id)}/output`);
    const on = (kind: string) => (e: MessageEvent) => {
      try {
        pending.current.push({ kind, data: JSON.parse(String(e.data)) as unknown });
        timer ??= setTimeout(flush, OUTPUT_FLUSH_MS);
      } catch {
        // not JSON: not an event of this feed
      }
    };
    source.addEventListener("output", on("output"));
    source.addEventListener("end", on("end"));
    source.addEventListener("done", () => source.close());
    return () => {
      source.close();
      if (timer !== null) clearTimeout(timer);
    };
  }, [id]);
  return state;
}

function describeStrategy(s: NonNullable<Action["strategy"]>): string {
  const parts = [
    s.batch_size ? `${plural(s.batch_size, "host")} per batch` : s.batch_percent ? `${s.batch_percent} % per batch` : "all hosts at once",
    s.pause_s ? `pause ${s.pause_s} s` : "",
    s.health_gate_s ? `health gate ${s.health_gate_s} s` : "",
    s.max_failures !== null && s.max_failures !== undefined ? `max failures ${s.max_failures}` : s.max_failures_percent ? `max failures ${s.max_failures_percent} %` : "",
    s.host_timeout_s ? `per-host timeout ${s.host_timeout_s} s` : "",
    s.deadline_s ? `deadline ${s.deadline_s} s` : "",
  ];
  return parts.filter(Boolean).join(", ");
}

function CancelBox({ onCancel }: { onCancel(abort: boolean): Promise<void> }) {
  const [abort, setAbort] = useState(false);
  const [busy, setBusy] = useState(false);
  return (
    <section class="card" aria-labelledby="cancel-title">
      <h2 id="cancel-title">Cancel</h2>
      <div class="field check">
        <input id="abort-running" type="checkbox" checked={abort} onChange={(e) => setAbort(e.currentTarget.checked)} />
        <label for="abort-running">abort running hosts</label>
      </div>
      <button
        type="button"
        class="danger"
        data-testid="cancel-button"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          await onCancel(abort);
          setBusy(false);
        }}
      >
        Cancel action
      </button>
    </section>
  );
}

export function ApprovalBox({ approval, now, canApprove, onDecide }: { approval: Approval; now: number; canApprove: boolean; onDecide(what: "approve" | "reject", body: unknown): Promise<void> }) {
  const [comment, setComment] = useState("");
  const [reason, setReason] = useState("");
  const [missing, setMissing] = useState(false);
  const [busy, setBusy] = useState(false);
  const decide = async (what: "approve" | "reject") => {
    if (what === "reject" && !reason.trim()) {
      setMissing(true);
      return;
    }
    setMissing(false);
    setBusy(true);
    await onDecide(what, what === "approve" ? { comment } : { reason });
    setBusy(false);
  };
  return (
    <section class="card approval" aria-labelledby="approval-title">
      <h2 id="approval-title">
        Approval: <span class={`state s-${approval.state}`}>{approval.state}</span>
      </h2>
      <p class="muted">
        {approval.state === "pending" ? (
          <>
            open until <time title={absolute(approval.open_until)}>{relative(approval.open_until, now)}</time>
          </>
        ) : (
          approval.decided_by && `decided by ${approval.decided_by} ${relative(approval.decided_at, now)}`
        )}
        {approval.reason && ` — ${approval.reason}`}
      </p>
      <ul class="policies">
        {approval.policies.map((p) => (
          <li key={p.name}>
            <strong>{p.name}</strong>: {p.approved_by.length} of {p.required} approvals{p.approved_by.length > 0 && ` (${p.approved_by.join(", ")})`}
            {p.from_groups.length > 0 && <span class="muted"> from {p.from_groups.join(", ")}</span>}
            {p.satisfied && " ✓"}
          </li>
        ))}
      </ul>
      {approval.votes.length > 0 && (
        <ul class="votes">
          {approval.votes.map((v) => (
            <li key={`${v.approver}${v.at}`}>
              {v.approver} {v.decision === "approve" ? "approved" : "rejected"} {relative(v.at, now)}
              {v.comment && `: ${v.comment}`}
            </li>
          ))}
        </ul>
      )}
      {canApprove && approval.state === "pending" && (
        <div class="decide">
          <div class="field">
            <label for="approve-comment">Comment (optional)</label>
            <input id="approve-comment" data-testid="approve-comment" value={comment} maxLength={500} onInput={(e) => setComment(e.currentTarget.value)} />
          </div>
          <button type="button" class="primary" data-testid="approve-button" disabled={busy} onClick={() => void decide("approve")}>
            Approve
          </button>
          <div class={`field${missing ? " invalid" : ""}`}>
            <label for="reject-reason">Reason to reject (required)</label>
            <input id="reject-reason" data-testid="reject-reason" value={reason} maxLength={500} aria-invalid={missing ? "true" : undefined} onInput={(e) => setReason(e.currentTarget.value)} />
            {missing && <span class="field-error">give a reason to reject</span>}
          </div>
          <button type="button" class="danger" data-testid="reject-button" disabled={busy} onClick={() => void decide("reject")}>
            Reject
          </button>
        </div>
      )}
    </section>
  );
}
