// The admin's part of the hosts page: hosts' requests to join the bus, waiting for approval, and
// one-time enrollment tokens. Shown to admins only (the server refuses everyone else).
import { useState } from "preact/hooks";
import { get, post } from "../api/client";
import { errorText } from "../api/errors";
import type { EnrollmentToken, HostKey, NewEnrollmentToken } from "../api/types";
import { DEFAULT_EXPIRY_S, enrollCommand, EXPIRY_CHOICES, recentTokens, sortPending, sourceText, tokenBody, tokenState, tokenStateText, type TokenForm } from "../lib/enrollment";
import { useNow, usePolling } from "../lib/hooks";
import { plural } from "../lib/plural";
import { useQuery } from "../lib/query";
import { absolute, relative } from "../lib/time";
import { ConfirmButton } from "./Confirm";
import { CopyField } from "./CopyField";
import { ErrorAlert } from "./ErrorAlert";
import { SelectField, TextField } from "./Field";

/** No live change announces a request: the list is asked for again this often. */
export const PENDING_POLL_MS = 4_000;
const TOKENS_POLL_MS = 15_000;
const RECENT_TOKENS = 8;
const PENDING_PATH = "/api/v1/enrollments?state=pending";
const TOKENS_PATH = "/api/v1/enrollment-tokens";

export function EnrollmentSection() {
  const now = useNow(5_000);
  const pending = useQuery<HostKey[]>(PENDING_PATH, (s) => get(PENDING_PATH, s));
  usePolling(pending.refetch, PENDING_POLL_MS, pending.status !== 403);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  // Decided here: off the list at once, not only once the server's next answer drops them.
  const [decided, setDecided] = useState<ReadonlySet<string>>(new Set());
  // Being decided: its buttons wait (a second click would be refused as not waiting any more).
  const [deciding, setDeciding] = useState<ReadonlySet<string>>(new Set());
  const rows = sortPending(pending.data ?? []).filter((k) => !decided.has(k.public_key));

  const decide = async (k: HostKey, what: "approve" | "reject") => {
    setError(null);
    setStatus("");
    setDeciding((d) => new Set(d).add(k.public_key));
    try {
      await post(`/api/v1/enrollments/${encodeURIComponent(k.host)}/${what}`, { public_key: k.public_key });
      setDecided((d) => new Set(d).add(k.public_key));
      setStatus(what === "approve" ? `${k.host} approved: it gets its bus credentials when it next asks.` : `The request of ${k.host} was rejected.`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setDeciding((d) => {
        const left = new Set(d);
        left.delete(k.public_key);
        return left;
      });
    }
    pending.refetch();
  };

  return (
    <section class="card enrollment" aria-labelledby="enrollment-title" data-testid="enrollment">
      <h2 id="enrollment-title">Enrollment</h2>
      <ErrorAlert testid="enrollment-error" errors={[pending.error, error]} />
      <p class="status-line" role="status" data-testid="enrollment-status">
        {status}
      </p>
      <h3 id="pending-title">
        Waiting for approval
        {rows.length > 0 && (
          <span class="count" data-testid="pending-count">
            {" "}
            ({rows.length})
          </span>
        )}
      </h3>
      {pending.data && rows.length === 0 && (
        <p class="muted" data-testid="pending-none">
          No host waits for approval. A host run with <code>drover agent enroll --server {location.origin}</code> and no token asks here.
        </p>
      )}
      {rows.length > 0 && (
        <>
          <p class="muted small">Compare each key with the one the host printed before you approve it.</p>
          <div class="table-wrap">
            <table data-testid="pending-enrollments" aria-labelledby="pending-title">
              <thead>
                <tr>
                  <th scope="col">Host</th>
                  <th scope="col">Key</th>
                  <th scope="col">From</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Decide</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((k) => (
                  <tr key={k.public_key} data-testid={`enrollment-row-${k.host}`} data-key={k.public_key}>
                    <th scope="row">{k.host}</th>
                    <td>
                      <code class="key" data-testid="enrollment-key">
                        {k.public_key}
                      </code>
                    </td>
                    <td>{sourceText(k)}</td>
                    <td title={absolute(k.requested_at)}>{relative(k.requested_at, now)}</td>
                    <td>
                      <div class="decide-inline">
                        <button type="button" class="primary" data-testid="enrollment-approve" aria-label={`Approve ${k.host}`} disabled={deciding.has(k.public_key)} onClick={() => void decide(k, "approve")}>
                          Approve
                        </button>
                        <ConfirmButton
                          label="Reject"
                          ariaLabel={`Reject ${k.host}`}
                          testid="enrollment-reject"
                          question={`Reject the request of ${k.host}? Its key is refused from then on: the host must make a new key to ask again.`}
                          confirm="Reject"
                          onConfirm={() => decide(k, "reject")}
                          disabled={deciding.has(k.public_key)}
                        />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      <Tokens now={now} />
    </section>
  );
}

/** Tokens: asked for only once the admin opens this part. */
function Tokens({ now }: { now: number }) {
  const [open, setOpen] = useState(false);
  const tokens = useQuery<EnrollmentToken[]>(open ? TOKENS_PATH : null, (s) => get(TOKENS_PATH, s));
  usePolling(tokens.refetch, TOKENS_POLL_MS, open && tokens.status !== 403);
  const recent = recentTokens(tokens.data ?? [], RECENT_TOKENS);
  return (
    <details class="enroll-tokens" data-testid="enrollment-tokens" onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary data-testid="enrollment-tokens-toggle">Enrollment tokens: make one, see the recent ones</summary>
      <div class="enroll-grid">
        <NewToken onCreated={tokens.refetch} />
        <div>
          <h3 id="tokens-title">Recent tokens</h3>
          <ErrorAlert testid="tokens-error" errors={[tokens.error]} />
          {tokens.data && tokens.data.length === 0 && <p class="muted">No token was made yet.</p>}
          {recent.shown.length > 0 && (
            <ul class="tokens" aria-labelledby="tokens-title" data-testid="token-list">
              {recent.shown.map((t) => {
                const state = tokenState(t, now);
                return (
                  <li key={t.id} data-testid={`token-${t.id}`} data-state={state}>
                    <span class={`token-state t-${state}`}>{tokenStateText(t, now)}</span>
                    <span class="muted small">
                      {" "}
                      · <code>{t.id}</code> · {t.host ? `for ${t.host}` : "any host"} · by {t.created_by} <span title={absolute(t.created_at)}>{relative(t.created_at, now)}</span>
                    </span>
                  </li>
                );
              })}
            </ul>
          )}
          {recent.more > 0 && <p class="muted small">and {plural(recent.more, "older token")}</p>}
        </div>
      </div>
    </details>
  );
}

function NewToken({ onCreated }: { onCreated(): void }) {
  const [form, setForm] = useState<TokenForm>({ host: "", expiry: String(DEFAULT_EXPIRY_S) });
  const [errors, setErrors] = useState<Partial<Record<keyof TokenForm, string>>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [made, setMade] = useState<NewEnrollmentToken | null>(null);

  const submit = async () => {
    const checked = tokenBody(form);
    setErrors(checked.errors);
    if (!checked.body) return;
    setBusy(true);
    setError(null);
    setMade(null);
    try {
      setMade(await post<NewEnrollmentToken>(TOKENS_PATH, checked.body));
      onCreated();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <h3 id="new-token-title">New enrollment token</h3>
      <form
        class="row"
        aria-labelledby="new-token-title"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <TextField
          label="For host (optional)"
          id="token-host"
          data-testid="token-host"
          placeholder="any host"
          autoComplete="off"
          spellcheck={false}
          value={form.host}
          onValue={(host) => setForm((f) => ({ ...f, host }))}
          error={errors.host}
        />
        <SelectField
          label="Valid for"
          id="token-expiry"
          testid="token-expiry"
          value={form.expiry}
          options={EXPIRY_CHOICES.map(([seconds, label]): [string, string] => [String(seconds), label])}
          onValue={(expiry) => setForm((f) => ({ ...f, expiry }))}
        />
        <button type="submit" class="primary" data-testid="token-create" disabled={busy}>
          Create token
        </button>
      </form>
      {errors.expiry && <p class="field-error">{errors.expiry}</p>}
      <ErrorAlert testid="token-error" errors={[error]} />
      {made && (
        <div class="secret" data-testid="token-made" role="group" aria-labelledby="token-made-title">
          <p id="token-made-title">
            <strong>Copy the token now: it is shown this once.</strong> It enrolls {made.host ? `host ${made.host}` : "one host"}, once, until{" "}
            <time dateTime={made.expires_at}>{absolute(made.expires_at)}</time>.
          </p>
          <CopyField label="Token" id="token-secret" testid="token-secret" value={made.token} focus />
          <CopyField label="On the host, run" id="token-command" testid="token-command" value={enrollCommand(location.origin, made.token, made.host)} />
          <button type="button" data-testid="token-done" onClick={() => setMade(null)}>
            Done: hide it
          </button>
        </div>
      )}
    </div>
  );
}
