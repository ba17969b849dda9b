import { request, query } from "../api/client";
import type { Counts, HostOut } from "../api/types";
import { EnrollmentSection } from "../components/Enrollment";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField, TextField } from "../components/Field";
import { HealthBar } from "../components/HealthBar";
import { hostHref, Link } from "../components/Link";
import { VirtualTable } from "../components/VirtualTable";
import { useSession } from "../lib/context";
import { mayEnroll } from "../lib/enrollment";
import { labelProblem, trimmed } from "../lib/filters";
import { useDebounced, useFilters, useNow, useTitle } from "../lib/hooks";
import { usePaged } from "../lib/paged";
import { plural } from "../lib/plural";
import { onTopics } from "../lib/query";
import { absolute, relative } from "../lib/time";

const DEFAULTS = { q: "", state: "", label: "", application: "" };
const PAGE = 200;
const ROW = 36;

export function HostsPage() {
  useTitle("Hosts");
  const now = useNow();
  const { who } = useSession();
  const [filters, setFilters] = useFilters(DEFAULTS);
  const settled = useDebounced(trimmed(filters), 200);
  const labelError = labelProblem(filters.label);
  const base = query({ brief: true, ...settled, label: labelProblem(settled.label) ? "" : settled.label });
  const paged = usePaged<HostOut, null>(
    base,
    PAGE,
    async (offset, limit, signal) => {
      const answer = await request<HostOut[]>("GET", `/api/v1/hosts${base}&offset=${offset}&limit=${limit}`, undefined, signal);
      const header = answer.headers.get("X-Total-Count");
      const total = header === null ? offset + answer.data.length : Number(header);
      return { rows: answer.data, total, meta: null };
    },
    onTopics("fleet"),
  );
  const total = paged.total ?? 0;

  return (
    <main id="main" class="fill">
      <div class="page-head">
        <h1 tabIndex={-1}>Hosts</h1>
        {paged.total !== null && <p class="totals">{plural(total, "host")}</p>}
      </div>
      {/* Admin-only on the server, an unscoped admin grant: others neither see it nor ask. */}
      {mayEnroll(who) && <EnrollmentSection />}
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <TextField label="Search" type="search" data-search value={filters.q} onValue={(q) => setFilters({ q })} placeholder="host name (press /)" />
        <SelectField label="State" value={filters.state} options={["", "online", "offline", "lost"]} onValue={(state) => setFilters({ state })} />
        <TextField label="Labels" value={filters.label} onValue={(label) => setFilters({ label })} placeholder="k=v,k2=v2" error={labelError ?? undefined} />
        <TextField label="Application" value={filters.application} onValue={(application) => setFilters({ application })} />
      </form>
      <ErrorAlert errors={[paged.error]} />
      <VirtualTable
        testid="hosts-table"
        label="hosts"
        columns={5}
        total={total}
        rowHeight={ROW}
        onRange={paged.show}
        head={
          <tr aria-rowindex={1}>
            <th scope="col">Host</th>
            <th scope="col">State</th>
            <th scope="col">Agent</th>
            <th scope="col">Last heartbeat</th>
            <th scope="col">Services</th>
          </tr>
        }
        row={(i) => {
          const h = paged.rowAt(i);
          if (!h)
            return (
              <tr key={i} aria-rowindex={i + 2} class="loading-row">
                <td colSpan={5}>…</td>
              </tr>
            );
          return (
            <tr key={h.host} aria-rowindex={i + 2} data-testid={`host-row-${h.host}`}>
              <th scope="row">
                <Link href={hostHref(h.host)}>{h.host}</Link>
              </th>
              <td>
                <span class={`life life-${h.state}`}>{h.state}</span> <span class="muted" title={absolute(h.state_since)}>since {relative(h.state_since, now)}</span>
              </td>
              <td>{h.agent_version}</td>
              <td title={absolute(h.last_heartbeat)}>{relative(h.last_heartbeat, now)}</td>
              <td>{h.counts ? <HealthBar counts={h.counts as Counts} /> : <span class="muted">{h.services.length}</span>}</td>
            </tr>
          );
        }}
      />
    </main>
  );
}
