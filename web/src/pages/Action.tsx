import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api/client";
import { errorText } from "../api/errors";
import type { Action, Approval, HostResult } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { appHref, hostHref, Link } from "../components/Link";
import { useSession } from "../lib/context";
import { useNow, useTitle } from "../lib/hooks";
import { applyOutput, type OutputState } from "../lib/output";
import { may } from "../lib/permissions";
import { byBatch, isOpen, outcomes } from "../lib/progress";
import { useQuery, type Touched } from "../lib/query";
import { absolute, duration, relative } from "../lib/time";

export function ActionPage({ id }: { id: string }) {
  useTitle(`Action ${id}`);
  const { who } = useSession();
  const now = useNow(5_000);
  const path = `/api/v1/actions/${encodeURIComponent(id)}`;
  const touched: Touched = (c) => c.actions.includes(id) || (c.topics.includes("approvals") && !c.actions.length);
  const q = useQuery<Action>(path, (s) => get(path, s), touched);
  const [actionError, setActionError] = useState<string | null>(null);
  const a = q.data?.id === id ? q.data : null;
  const output = useOutput(a?.command ? id : null);

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
        {byBatch(a.hosts).map((batch, i) => (
          <section class="batch" data-testid={`batch-${(batch[0]?.batch ?? i) + 1}`} key={i} aria-labelledby={`batch-h-${i}`}>
            <h3 id={`batch-h-${i}`}>Batch {(batch[0]?.batch ?? i) + 1}</h3>
            <div class="table-wrap">
              <table class="fixed">
                <thead>
                  <tr>
                    <th scope="col">Host</th>
                    <th scope="col">Outcome</th>
                    <th scope="col" class="num">Exit code</th>
                    <th scope="col">Started</th>
                    <th scope="col">Finished</th>
                    <th scope="col" class="num">Duration</th>
                  </tr>
                </thead>
                <tbody>
                  {batch.map((h) => (
                    <HostRow key={h.host} h={h} now={now} />
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        ))}
      </section>
      {a.command && (
        <section>
          <h2>Output</h2>
          {a.hosts.map((h) => (
            <HostOutputView key={h.host} actionId={a.id} h={h} live={output[h.host]} />
          ))}
        </section>
      )}
    </main>
  );
}

function HostRow({ h, now }: { h: HostResult; now: number }) {
  return (
    <tr data-testid={`host-result-${h.host}`} data-outcome={h.outcome}>
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
    </tr>
  );
}

function HostOutputView({ actionId, h, live }: { actionId: string; h: HostResult; live: OutputState[string] | undefined }) {
  const text = live?.text || h.output;
  return (
    <div class="output">
      <h3>
        {h.host} <span class={`outcome o-${live?.end?.outcome ?? h.outcome}`}>{live?.end?.outcome ?? h.outcome}</span>{" "}
        <a class="small" href={`/api/v1/actions/${encodeURIComponent(actionId)}/hosts/${encodeURIComponent(h.host)}/output`} target="_blank" rel="noopener">
          whole output
        </a>
      </h3>
      {live?.truncated && <p class="muted small">Only the end is shown.</p>}
      <pre data-testid={`output-${h.host}`} tabIndex={0} aria-label={`output of ${h.host}`}>
        {text}
      </pre>
    </div>
  );
}

/** Follows the command's output while the page shows it; the browser resumes it after a drop
 * (Last-Event-ID), and it is closed at `done`. */
function useOutput(id: string | null): OutputState {
  const [state, setState] = useState<OutputState>({});
  useEffect(() => {
    setState({});
    if (!id) return;
    const source = new EventSource(`/api/v1/actions/${encodeURIComponent(id)}/output`);
    const on = (kind: string) => (e: MessageEvent) => {
      try {
        const data: unknown = JSON.parse(String(e.data));
        setState((s) => applyOutput(s, kind, data));
      } catch {
        // not JSON: not an event of this feed
      }
    };
    source.addEventListener("output", on("output"));
    source.addEventListener("end", on("end"));
    source.addEventListener("done", () => source.close());
    return () => source.close();
  }, [id]);
  return state;
}

function describeStrategy(s: NonNullable<Action["strategy"]>): string {
  const parts = [
    s.batch_size ? `${s.batch_size} ${s.batch_size === 1 ? "host" : "hosts"} per batch` : s.batch_percent ? `${s.batch_percent} % per batch` : "all hosts at once",
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
