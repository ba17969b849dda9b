import { useState } from "preact/hooks";
import { get, post, query } from "../api/client";
import { errorText } from "../api/errors";
import type { Action, Approval } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField } from "../components/Field";
import { actionHref, appHref, Link } from "../components/Link";
import { useSession } from "../lib/context";
import { useFilters, useNow, useTitle } from "../lib/hooks";
import { mergeDecided, sortApprovals } from "../lib/approvals";
import { may } from "../lib/permissions";
import { onTopics, useQuery } from "../lib/query";
import { absolute, relative } from "../lib/time";

const DEFAULTS = { state: "" };
const STATES: [string, string][] = [
  ["", "pending, for me"],
  ["pending", "pending"],
  ["approved", "approved"],
  ["rejected", "rejected"],
  ["expired", "expired"],
  ["cancelled", "cancelled"],
];

export function ApprovalsPage() {
  useTitle("Approvals");
  const now = useNow();
  const { who } = useSession();
  const [filters, setFilters] = useFilters(DEFAULTS);
  const key = `/api/v1/approvals${query(filters)}`;
  const q = useQuery<Approval[]>(key, (s) => get(key, s), onTopics("approvals", "actions"));
  const [error, setError] = useState<string | null>(null);
  // What was decided here stays on show (with its new state) though the inbox no longer has it.
  const [decided, setDecided] = useState<Record<string, Approval>>({});

  const decide = async (a: Approval, what: "approve" | "reject", text: string) => {
    setError(null);
    try {
      const action = await post<Action>(`/api/v1/actions/${encodeURIComponent(a.action_id)}/${what}`, what === "approve" ? { comment: text } : { reason: text });
      const approval = action.approval;
      if (approval) setDecided((d) => ({ ...d, [approval.action_id]: approval }));
      q.refetch();
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <main id="main">
      <h1 tabIndex={-1}>Approvals</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <SelectField label="Show" value={filters.state} options={STATES} onValue={(state) => setFilters({ state })} />
      </form>
      <ErrorAlert errors={[q.error, error]} />
      {q.data && (
        <div class="table-wrap">
          <table data-testid="approvals-table">
            <thead>
              <tr>
                <th scope="col">Action</th>
                <th scope="col">Application</th>
                <th scope="col">State</th>
                <th scope="col">Requested</th>
                <th scope="col">Policies</th>
                <th scope="col">Decide</th>
              </tr>
            </thead>
            <tbody>
              {sortApprovals(mergeDecided(q.data, Object.values(decided))).map((a) => (
                <tr key={a.action_id} data-testid={`approval-row-${a.action_id}`}>
                  <th scope="row">
                    <Link href={actionHref(a.action_id)}>{a.kind}</Link> <code class="muted small">{a.action_id}</code>
                  </th>
                  <td>
                    <Link href={appHref(a.application)}>{a.application}</Link> <span class="tag">{a.environment}</span>
                  </td>
                  <td>
                    <span class={`state s-${a.state}`}>{a.state}</span>
                    {a.state === "pending" && <div class="muted small">closes {relative(a.open_until, now)}</div>}
                    {a.reason && <div class="muted small">{a.reason}</div>}
                  </td>
                  <td title={absolute(a.requested_at)}>
                    by {a.requested_by} {relative(a.requested_at, now)}
                  </td>
                  <td>
                    {a.policies.map((p) => (
                      <div key={p.name} class="small">
                        {p.name}: {p.approved_by.length}/{p.required}
                        {p.satisfied && " ✓"}
                      </div>
                    ))}
                  </td>
                  <td>
                    {a.state === "pending" && who && who.name !== a.requested_by && may(who, "approve", a.application, a.environment) ? (
                      <DecideInline a={a} onDecide={decide} />
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {q.data.length === 0 && Object.keys(decided).length === 0 && <p class="muted">Nothing waits for you.</p>}
        </div>
      )}
    </main>
  );
}

function DecideInline({ a, onDecide }: { a: Approval; onDecide(a: Approval, what: "approve" | "reject", text: string): Promise<void> }) {
  const [comment, setComment] = useState("");
  const [reason, setReason] = useState("");
  const [missing, setMissing] = useState(false);
  const [busy, setBusy] = useState(false);
  const decide = async (what: "approve" | "reject") => {
    if (what === "reject" && !reason.trim()) return setMissing(true);
    setMissing(false);
    setBusy(true);
    await onDecide(a, what, (what === "approve" ? comment : reason).trim());
    setBusy(false);
  };
  return (
    <div class="decide-inline">
      <label for={`comment-${a.action_id}`} class="sr">
        comment on approving {a.action_id}
      </label>
      <input id={`comment-${a.action_id}`} data-testid="approve-comment" placeholder="comment (optional)" value={comment} maxLength={500} onInput={(e) => setComment(e.currentTarget.value)} />
      <button type="button" class="primary" data-testid="approve-button" disabled={busy} onClick={() => void decide("approve")}>
        Approve
      </button>
      <label for={`reason-${a.action_id}`} class="sr">
        reason to reject {a.action_id}
      </label>
      <input id={`reason-${a.action_id}`} data-testid="reject-reason" placeholder="reason to reject" value={reason} maxLength={500} aria-invalid={missing ? "true" : undefined} onInput={(e) => setReason(e.currentTarget.value)} />
      <button type="button" class="danger" data-testid="reject-button" disabled={busy} onClick={() => void decide("reject")}>
        Reject
      </button>
      {missing && <span class="field-error">a rejection needs a reason</span>}
    </div>
  );
}
