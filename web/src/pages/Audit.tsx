import { get, query } from "../api/client";
import type { AuditEntry } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField, TextField } from "../components/Field";
import { actionHref, Link } from "../components/Link";
import { trimmed } from "../lib/filters";
import { useDebounced, useFilters, useTitle } from "../lib/hooks";
import { onTopics, useQuery } from "../lib/query";
import { absolute, withZone } from "../lib/time";

const DEFAULTS = { actor: "", kind: "", subject: "", correlation: "", since: "", until: "", limit: "100" };

export function AuditPage() {
  useTitle("Audit");
  const [filters, setFilters] = useFilters(DEFAULTS);
  const settled = useDebounced(trimmed(filters), 300);
  const key = `/api/v1/audit${query({ ...settled, since: withZone(settled.since), until: withZone(settled.until) })}`;
  const q = useQuery<AuditEntry[]>(key, (s) => get(key, s), onTopics("audit"));
  const denied = q.status === 403;
  return (
    <main id="main">
      <h1 tabIndex={-1}>Audit log</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <TextField label="Actor" type="search" data-search value={filters.actor} onValue={(actor) => setFilters({ actor })} />
        <TextField label="Kind" value={filters.kind} onValue={(kind) => setFilters({ kind })} placeholder="action. or action.requested" />
        <TextField label="Subject" value={filters.subject} onValue={(subject) => setFilters({ subject })} />
        <TextField label="Correlation" value={filters.correlation} onValue={(correlation) => setFilters({ correlation })} />
        <TextField label="Since" type="datetime-local" step={1} value={filters.since} onValue={(since) => setFilters({ since })} />
        <TextField label="Until" type="datetime-local" step={1} value={filters.until} onValue={(until) => setFilters({ until })} />
        <SelectField label="Limit" value={filters.limit} options={["50", "100", "200", "500", "1000"]} onValue={(limit) => setFilters({ limit })} />
      </form>
      <ErrorAlert errors={[denied ? `You may not read the audit log. ${q.error ?? ""}`.trim() : q.error]} />
      {q.data && !denied && (
        <div class="table-wrap">
          <table data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Kind</th>
                <th scope="col">Subject</th>
                <th scope="col">Detail</th>
                <th scope="col">Source</th>
                <th scope="col">Correlation</th>
              </tr>
            </thead>
            <tbody>
              {q.data.map((e) => (
                <tr key={e.id}>
                  <td>
                    <time dateTime={e.at}>{absolute(e.at)}</time>
                  </td>
                  <td>{e.actor}</td>
                  <td>
                    <code>{e.kind}</code>
                  </td>
                  <td>{e.kind.startsWith("action.") || e.kind.startsWith("approval.") ? <Link href={actionHref(e.subject)}>{e.subject}</Link> : e.subject}</td>
                  <td class="detail">
                    <code>{JSON.stringify(e.detail)}</code>
                  </td>
                  <td>{e.source}</td>
                  <td>
                    {e.correlation && (
                      <button type="button" class="link" onClick={() => setFilters({ correlation: e.correlation })} title="show everything of this request">
                        {e.correlation}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {q.data.length === 0 && <p class="muted">No entry matches.</p>}
        </div>
      )}
    </main>
  );
}
