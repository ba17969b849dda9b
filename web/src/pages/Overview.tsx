import { useLayoutEffect } from "preact/hooks";
import { get, query } from "../api/client";
import type { Overview, OverviewApp } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField, TextField } from "../components/Field";
import { HealthBar, HealthLegend } from "../components/HealthBar";
import { appHref, Link } from "../components/Link";
import { formatCount } from "../lib/counts";
import { labelProblem, remember, trimmed } from "../lib/filters";
import { plural } from "../lib/plural";
import { useDebounced, useFilters, useTitle } from "../lib/hooks";
import { onTopics, useQuery } from "../lib/query";

const DEFAULTS = { q: "", owner: "", environment: "", status: "", label: "" };
let readyMarked = false;
// Every environment seen in this session: the filter's options (the answer lists only those of
// the rows it has, so one chosen would hide the others).
const seenEnvironments = new Set<string>();

/** One row per application; its health in the column of its environment. */
export function OverviewPage() {
  useTitle("Fleet overview");
  const [filters, setFilters] = useFilters(DEFAULTS);
  const settled = useDebounced(trimmed(filters), 200);
  const labelError = labelProblem(filters.label);
  const key = labelProblem(settled.label) ? null : `/api/v1/overview${query(settled)}`;
  const data = useQuery<Overview>(key, (signal) => get(key as string, signal), onTopics("fleet", "config"));
  const overview = data.data;

  useLayoutEffect(() => {
    if (overview && !readyMarked) {
      readyMarked = true;
      performance.mark("drover:overview-ready");
    }
  }, [overview]);

  const envs = overview?.environments ?? [];
  const envOptions = remember(seenEnvironments, [...envs, ...(overview?.applications.map((a) => a.environment) ?? []), filters.environment]);
  return (
    <main id="main">
      <div class="page-head">
        <h1 tabIndex={-1}>Fleet overview</h1>
        {overview && (
          <p class="totals" aria-label="hosts">
            <span>{plural(overview.hosts.total, "host")}:</span>
            <span class="life-online">{formatCount(overview.hosts.online)} online</span>
            <span class="life-offline">{formatCount(overview.hosts.offline)} offline</span>
            <span class="life-lost">{formatCount(overview.hosts.lost)} lost</span>
          </p>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <TextField label="Search" type="search" data-search value={filters.q} onValue={(q) => setFilters({ q })} placeholder="application, description (press /)" />
        <TextField label="Owner" value={filters.owner} onValue={(owner) => setFilters({ owner })} />
        <SelectField label="Environment" value={filters.environment} options={["", ...envOptions]} onValue={(environment) => setFilters({ environment })} />
        <SelectField label="Status" value={filters.status} options={["", "ok", "drifted", "failed", "unknown"]} onValue={(status) => setFilters({ status })} />
        <TextField label="Labels" value={filters.label} onValue={(label) => setFilters({ label })} placeholder="k=v,k2=v2" error={labelError ?? undefined} />
      </form>
      <ErrorAlert errors={[data.error]} />
      {overview ? (
        <OverviewTable apps={overview.applications} envs={envs} />
      ) : (
        !data.error && <p class="muted">Loading…</p>
      )}
    </main>
  );
}

function OverviewTable({ apps, envs }: { apps: OverviewApp[]; envs: string[] }) {
  if (!apps.length) return <p class="muted" data-testid="overview-table">No application matches.</p>;
  return (
    <>
      <HealthLegend />
      <div class="table-wrap">
        <table data-testid="overview-table" class="overview">
          <caption class="sr">Health of each application's services, by environment</caption>
          <thead>
            <tr>
              <th scope="col">Application</th>
              <th scope="col">Owners</th>
              <th scope="col" class="num">Services</th>
              <th scope="col" class="num">Hosts</th>
              {envs.map((e) => (
                <th scope="col" key={e}>
                  {e}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {apps.map((a) => (
              <tr key={a.name} data-testid={`app-row-${a.name}`} class={a.counts.drifted > 0 ? "drift" : undefined}>
                <th scope="row">
                  <Link href={appHref(a.name)}>{a.name}</Link>
                  {a.description && <div class="desc">{a.description}</div>}
                </th>
                <td>{a.owners.join(", ")}</td>
                <td class="num">{formatCount(a.services)}</td>
                <td class="num">{formatCount(a.hosts)}</td>
                {envs.map((e) => (
                  <td key={e}>{a.environment === e ? <HealthBar counts={a.counts} /> : <span class="muted">—</span>}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
