import { useState } from "preact/hooks";
import { get, query } from "../api/client";
import type { Grid, GridCell, GridRow } from "../api/types";
import { ActionPanel } from "../components/ActionPanel";
import { ErrorAlert } from "../components/ErrorAlert";
import { SelectField, TextField } from "../components/Field";
import { HealthBar } from "../components/HealthBar";
import { hostHref, Link } from "../components/Link";
import { VirtualTable } from "../components/VirtualTable";
import { useSession } from "../lib/context";
import { labelProblem, trimmed } from "../lib/filters";
import { useDebounced, useFilters, useNow, useTitle } from "../lib/hooks";
import { usePaged } from "../lib/paged";
import { may } from "../lib/permissions";
import { plural } from "../lib/plural";
import type { Touched } from "../lib/query";
import { absolute, relative } from "../lib/time";

const DEFAULTS = { q: "", status: "", label: "" };
const PAGE = 100;
const ROW = 44;

type Meta = Omit<Grid, "rows">;

function toggle(set: Set<string>, value: string, on: boolean): Set<string> {
  const next = new Set(set);
  if (on) next.add(value);
  else next.delete(value);
  return next;
}

export function AppPage({ name }: { name: string }) {
  useTitle(name);
  const { who } = useSession();
  const now = useNow();
  const [filters, setFilters] = useFilters(DEFAULTS);
  const settled = useDebounced(trimmed(filters), 200);
  const labelError = labelProblem(filters.label);
  const wanted = { ...settled, label: labelProblem(settled.label) ? "" : settled.label };
  const [hosts, setHosts] = useState<Set<string>>(new Set());
  const [services, setServices] = useState<Set<string>>(new Set());
  const [actionError, setActionError] = useState<string | null>(null);

  const base = `/api/v1/applications/${encodeURIComponent(name)}/grid`;
  const touched: Touched = (c) => (c.topics.includes("fleet") || c.topics.includes("config")) && (c.applications === null || c.applications.includes(name));
  const paged = usePaged<GridRow, Meta>(
    `${base}${query(wanted)}`,
    PAGE,
    async (offset, limit, signal) => {
      const { rows, ...meta } = await get<Grid>(`${base}${query({ ...wanted, offset, limit })}`, signal);
      return { rows, total: meta.total, meta };
    },
    touched,
  );
  const grid = paged.meta;
  const svc = grid?.services ?? [];
  const canAct = !!grid && may(who, "act", name, grid.environment);

  return (
    <main id="main" class="fill">
      <p class="crumbs">
        <Link href="/">Overview</Link> /
      </p>
      <div class="page-head">
        <h1 tabIndex={-1}>{name}</h1>
        {grid && (
          <p class="totals">
            <span class="tag">{grid.environment}</span> {grid.owners.length > 0 && <span>owners: {grid.owners.join(", ")}</span>} <span>{plural(grid.total, "host")}</span>
          </p>
        )}
      </div>
      {grid?.description && <p class="muted">{grid.description}</p>}
      {grid && <HealthBar counts={grid.counts} />}
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <TextField label="Search hosts" type="search" data-search value={filters.q} onValue={(q) => setFilters({ q })} placeholder="host name (press /)" />
        <SelectField label="Status" value={filters.status} options={["", "ok", "drifted", "failed", "unknown"]} onValue={(status) => setFilters({ status })} />
        <TextField label="Labels" value={filters.label} onValue={(label) => setFilters({ label })} placeholder="k=v,k2=v2" error={labelError ?? undefined} />
      </form>
      <ErrorAlert errors={[paged.error, actionError]} />
      {canAct && (hosts.size > 0 || services.size > 0) && (
        <p class="selection">
          Selected: {plural(hosts.size, "host")}, {plural(services.size, "service")}{" "}
          <button
            type="button"
            class="ghost"
            onClick={() => {
              setHosts(new Set());
              setServices(new Set());
            }}
          >
            Clear selection
          </button>
        </p>
      )}
      <div class={canAct ? "app-layout" : undefined}>
        {grid && (
          <VirtualTable
            testid="grid"
            label={`services of ${name} on each host`}
            className="grid"
            columns={svc.length + (canAct ? 2 : 1)}
            total={grid.total}
            rowHeight={ROW}
            onRange={paged.show}
            head={
              <tr aria-rowindex={1}>
                {canAct && <td />}
                <th scope="col">Host</th>
                {svc.map((s) => (
                  <th scope="col" key={s.name} title={`${s.provider}, target ${s.target}, policy ${s.policy}${s.discovered ? ", discovered" : ""}`}>
                    {canAct && (
                      <input
                        type="checkbox"
                        data-testid={`select-service-${s.name}`}
                        aria-label={`select service ${s.name}`}
                        checked={services.has(s.name)}
                        onChange={(e) => setServices(toggle(services, s.name, e.currentTarget.checked))}
                      />
                    )}{" "}
                    {s.name}
                    <div class="muted small">→ {s.target}</div>
                  </th>
                ))}
              </tr>
            }
            row={(i) => {
              const r = paged.rowAt(i);
              if (!r)
                return (
                  <tr key={`l${i}`} aria-rowindex={i + 2} class="loading-row">
                    <td colSpan={svc.length + (canAct ? 2 : 1)}>…</td>
                  </tr>
                );
              return (
                <tr key={r.host} aria-rowindex={i + 2} class={hosts.has(r.host) ? "selected" : undefined}>
                  {canAct && (
                    <td class="sel">
                      <input
                        type="checkbox"
                        data-testid={`select-host-${r.host}`}
                        aria-label={`select host ${r.host}`}
                        checked={hosts.has(r.host)}
                        onChange={(e) => setHosts(toggle(hosts, r.host, e.currentTarget.checked))}
                      />
                    </td>
                  )}
                  <th scope="row">
                    <Link href={hostHref(r.host)}>{r.host}</Link>
                    {r.state !== "online" && <span class={`life life-${r.state ?? "lost"}`}> {r.state ?? "never reported"}</span>}
                  </th>
                  {svc.map((s, j) => (
                    <Cell key={s.name} host={r.host} service={s.name} cell={r.cells[j] ?? null} now={now} />
                  ))}
                </tr>
              );
            }}
          />
        )}
        {canAct && grid && (
          <ActionPanel
            application={name}
            services={svc}
            commands={grid.commands}
            hosts={[...hosts].sort()}
            selectedServices={svc.map((s) => s.name).filter((s) => services.has(s))}
            filtered={!!(wanted.q || wanted.status || wanted.label)}
            onError={setActionError}
          />
        )}
      </div>
    </main>
  );
}

function Cell({ host, service, cell, now }: { host: string; service: string; cell: GridCell | null; now: number }) {
  if (!cell)
    return (
      <td class="cell none" data-testid={`cell-${host}-${service}`}>
        <span class="sr">not on this host</span>
      </td>
    );
  const o = cell.override;
  return (
    <td
      class={`cell b-${cell.bucket}${cell.drift ? " drifting" : ""}`}
      data-testid={`cell-${host}-${service}`}
      data-status={cell.status ?? "unknown"}
      data-target={cell.target}
      data-drift={cell.drift ? "true" : "false"}
      title={[cell.message, cell.since && `since ${absolute(cell.since)}`].filter(Boolean).join(" — ") || undefined}
    >
      <span class={`status st-${cell.status ?? "unknown"}`}>{cell.status ?? "not reported"}</span>
      {cell.drift && <span class="drift-mark"> → {cell.target}</span>}
      {o && (
        <span class="badge" tabIndex={0} title={`override: ${o.status} by ${o.created_by} — ${o.reason}; until ${absolute(o.expires_at)}`}>
          override
          <span class="sr">
            : {o.status} by {o.created_by}, {o.reason}, until {absolute(o.expires_at)}
          </span>
        </span>
      )}
      {cell.since && <span class="since muted small"> {relative(cell.since, now)}</span>}
    </td>
  );
}
