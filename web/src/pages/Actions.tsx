import { get, query } from "../api/client";
import type { Action } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField, TextField } from "../components/Field";
import { actionHref, appHref, Link } from "../components/Link";
import { trimmed } from "../lib/filters";
import { useDebounced, useFilters, useNow, useTitle } from "../lib/hooks";
import { outcomes } from "../lib/progress";
import { onTopics, useQuery } from "../lib/query";
import { absolute, relative } from "../lib/time";

const DEFAULTS = { application: "", state: "", kind: "", requested_by: "", limit: "50" };

export function ActionsPage() {
  useTitle("Actions");
  const now = useNow();
  const [filters, setFilters] = useFilters(DEFAULTS);
  const settled = useDebounced(trimmed(filters), 250);
  const key = `/api/v1/actions${query(settled)}`;
  const q = useQuery<Action[]>(key, (s) => get(key, s), onTopics("actions", "approvals"));
  return (
    <main id="main">
      <h1 tabIndex={-1}>Actions</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <TextField label="Application" type="search" data-search value={filters.application} onValue={(application) => setFilters({ application })} />
        <SelectField label="State" value={filters.state} options={["", "pending-approval", "running", "succeeded", "failed"]} onValue={(state) => setFilters({ state })} />
        <SelectField label="Kind" value={filters.kind} options={["", "restart", "start", "stop", "command", "ping"]} onValue={(kind) => setFilters({ kind })} />
        <TextField label="Requested by" value={filters.requested_by} onValue={(requested_by) => setFilters({ requested_by })} />
        <SelectField label="Show" value={filters.limit} options={["20", "50", "100", "200", "500"]} onValue={(limit) => setFilters({ limit })} />
      </form>
      <ErrorAlert errors={[q.error]} />
      {q.data && (
        <div class="table-wrap">
          <table data-testid="actions-table">
            <thead>
              <tr>
                <th scope="col">Action</th>
                <th scope="col">Application</th>
                <th scope="col">Services</th>
                <th scope="col">State</th>
                <th scope="col">Hosts</th>
                <th scope="col">Requested by</th>
                <th scope="col">When</th>
              </tr>
            </thead>
            <tbody>
              {q.data.map((a) => (
                <tr key={a.id} data-testid={`action-row-${a.id}`}>
                  <th scope="row">
                    <Link href={actionHref(a.id)}>{a.kind === "command" && a.command ? `command ${a.command.name}` : a.kind}</Link> <code class="muted small">{a.id}</code>
                  </th>
                  <td>
                    <Link href={appHref(a.application)}>{a.application}</Link>
                  </td>
                  <td>{a.services.join(", ") || "every service"}</td>
                  <td>
                    <span class={`state s-${a.state}`}>{a.state}</span>
                    {a.rollout_state && a.rollout_state !== a.state && <span class="muted small"> ({a.rollout_state})</span>}
                  </td>
                  <td>
                    {Object.entries(outcomes(a.hosts))
                      .map(([o, n]) => `${n} ${o}`)
                      .join(", ")}
                  </td>
                  <td>{a.requested_by}</td>
                  <td title={absolute(a.created_at)}>{relative(a.created_at, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {q.data.length === 0 && <p class="muted">No action matches.</p>}
        </div>
      )}
    </main>
  );
}
