import { get } from "../api/client";
import type { HostOut, UnitOut } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { HostCredentials } from "../components/HostCredentials";
import { appHref, Link } from "../components/Link";
import { useSession } from "../lib/context";
import { mayEnroll } from "../lib/enrollment";
import { useNow, useTitle } from "../lib/hooks";
import { useQuery, type Touched } from "../lib/query";
import { absolute, relative } from "../lib/time";

export function HostPage({ host }: { host: string }) {
  useTitle(host);
  const now = useNow();
  const { who } = useSession();
  const path = encodeURIComponent(host);
  const touched: Touched = (c) => c.topics.includes("config") || (c.topics.includes("fleet") && (c.hosts === null || c.hosts.includes(host)));
  const info = useQuery<HostOut>(`host:${host}`, (s) => get(`/api/v1/hosts/${path}`, s), touched);
  const units = useQuery<UnitOut[]>(`units:${host}`, (s) => get(`/api/v1/units?host=${path}`, s), touched);
  const h = info.data?.host === host ? info.data : undefined;
  return (
    <main id="main">
      <p class="crumbs">
        <Link href="/hosts">Hosts</Link> /
      </p>
      <h1 tabIndex={-1}>{host}</h1>
      <ErrorAlert errors={[info.error, units.error]} />
      {h && (
        <dl class="facts">
          <dt>State</dt>
          <dd>
            <span class={`life life-${h.state}`}>{h.state}</span> since <time title={absolute(h.state_since)}>{relative(h.state_since, now)}</time>
            {h.state_cause && <span class="muted"> — {h.state_cause}</span>}
          </dd>
          <dt>Hostname</dt>
          <dd>{h.hostname}</dd>
          <dt>Agent version</dt>
          <dd>{h.agent_version}</dd>
          <dt>Agent started</dt>
          <dd title={absolute(h.started_at)}>{relative(h.started_at, now)}</dd>
          <dt>Last heartbeat</dt>
          <dd title={absolute(h.last_heartbeat)}>{relative(h.last_heartbeat, now)}</dd>
          <dt>Desired revision</dt>
          <dd>
            <code>{h.desired_revision ?? "—"}</code>
          </dd>
          {h.labels && Object.keys(h.labels).length > 0 && (
            <>
              <dt>Labels</dt>
              <dd>
                {Object.entries(h.labels).map(([k, v]) => (
                  <span class="tag" key={k}>
                    {k}={v}
                  </span>
                ))}
              </dd>
            </>
          )}
        </dl>
      )}
      {h && (
        <section>
          <h2>Services</h2>
          <div class="table-wrap">
            <table data-testid="host-services">
              <thead>
                <tr>
                  <th scope="col">Application</th>
                  <th scope="col">Service</th>
                  <th scope="col">Status</th>
                  <th scope="col">Since</th>
                  <th scope="col" class="num">PID</th>
                  <th scope="col" class="num">Restarts</th>
                  <th scope="col">Message</th>
                </tr>
              </thead>
              <tbody>
                {h.services.map((s) => (
                  <tr key={`${s.application}/${s.name}`}>
                    <td>
                      <Link href={appHref(s.application)}>{s.application}</Link>
                    </td>
                    <th scope="row">{s.name}</th>
                    <td>
                      <span class={`status st-${s.status}`}>{s.status}</span>
                      {s.convergence && s.convergence !== "ok" && <span class="muted"> ({s.convergence})</span>}
                    </td>
                    <td title={absolute(s.since)}>{relative(s.since, now)}</td>
                    <td class="num">{s.pid ?? "—"}</td>
                    <td class="num">{s.restarts}</td>
                    <td>{s.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
      {units.data && (
        <section>
          <h2>systemd units</h2>
          <div class="table-wrap">
            <table data-testid="host-units">
              <thead>
                <tr>
                  <th scope="col">Unit</th>
                  <th scope="col">Application</th>
                  <th scope="col">Service</th>
                  <th scope="col">Assigned by</th>
                  <th scope="col">Description</th>
                </tr>
              </thead>
              <tbody>
                {units.data.map((u) => (
                  <tr key={u.unit} class={u.vanished_since ? "vanished" : undefined}>
                    <th scope="row">
                      {u.unit}
                      {u.vanished_since && <span class="muted"> (vanished {relative(u.vanished_since, now)})</span>}
                    </th>
                    <td>{u.application ? <Link href={appHref(u.application)}>{u.application}</Link> : <span class="muted">unassigned</span>}</td>
                    <td>{u.service ?? "—"}</td>
                    <td>{u.assigned_by || "—"}</td>
                    <td>{u.description}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
      {mayEnroll(who) && <HostCredentials host={host} />}
    </main>
  );
}
