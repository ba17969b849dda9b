"""The pages' endpoints: the fleet at a glance, and an application's grid a page of hosts at a time.

Both are built for 10,000 hosts × 20 services: filtered and paged here, so a page never
carries the fleet (see server.health for how counting stays cheap). What a caller sees follows
the same rules as the rest of the API (routes.py): applications they may read, hosts where one
of those runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Query

from drover.config.placement import host_labels
from drover.config.schema import Application, FleetConfig
from drover.model.access import Permission
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.overview_schemas import (
    ApplicationHealthOut,
    CellOut,
    CommandSpecOut,
    GridOut,
    GridRowOut,
    GridServiceOut,
    HostTotalsOut,
    OverrideBadgeOut,
    OverviewOut,
    ParamOut,
)
from drover.server.api.routes import DENIED, NOT_FOUND
from drover.server.api.views import counts_view
from drover.server.api.visibility import Visibility
from drover.server.errors import NotFound
from drover.server.fleet import Lifecycle
from drover.server.health import ApplicationPicture, Bucket, Cell
from drover.server.targeting import parse_labels

overview = APIRouter(prefix="/api/v1", tags=["pages"])

Search = Annotated[
    str | None, Query(max_length=200, description="a part of a name, a description or an owner")
]
Labels = Annotated[
    str | None, Query(max_length=1000, description="k=v,k2=v2: only hosts with every one")
]


@overview.get("/overview", response_model=OverviewOut, responses=DENIED)
async def get_overview(
    ctx: Ctx,
    caller: Caller,
    q: Search = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    environment: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[Bucket | None, Query(description="only applications with some")] = None,
    label: Labels = None,
) -> OverviewOut:
    """Every application the caller may read with its placements counted by how they are, and
    the hosts by lifecycle. With `label`, only placements on (and hosts with) those labels."""
    config = ctx.config.active
    now = ctx.clock.now()
    wanted = parse_labels(label) if label is not None else None
    overrides = await ctx.overrides.active()
    online: dict[str, bool] = {}
    rows = []
    for name, app in sorted(config.applications.items()) if config else []:
        if not caller.may(Permission.READ, name, app.environment):
            continue
        if not _matches(name, app, q, owner, environment):
            continue
        assert config is not None
        picture = ApplicationPicture(
            config, ctx.fleet, name, app, now, overrides, ctx.discovery, online
        )
        hosts = picture.hosts
        if wanted is not None:
            hosts = [h for h in hosts if _labelled(config, h, wanted)]
        counts = picture.counts(set(hosts) if wanted is not None else None)
        if status is not None and not counts.has(status):
            continue
        rows.append(
            ApplicationHealthOut(
                name=name,
                description=app.description,
                environment=app.environment,
                owners=list(app.owners),
                services=len(picture.services),
                hosts=len(hosts),
                counts=counts_view(counts),
            )
        )
    return OverviewOut(
        applications=rows,
        environments=sorted({r.environment for r in rows}),
        hosts=_host_totals(ctx, caller, config, wanted),
        generated_at=now,
    )


@overview.get("/applications/{name}/grid", response_model=GridOut, responses=NOT_FOUND)
async def get_grid(
    name: str,
    ctx: Ctx,
    caller: Caller,
    q: Annotated[str | None, Query(max_length=200, description="a part of a host id")] = None,
    status: Annotated[Bucket | None, Query(description="only hosts with a service so")] = None,
    label: Labels = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> GridOut:
    """Services × hosts: one row per host (in host order) with a cell per service."""
    await authorize(ctx, caller, Permission.READ, name)
    config = ctx.config.active
    if config is None or name not in config.applications:
        raise NotFound(f"no application {name!r}")
    app = config.applications[name]
    now = ctx.clock.now()
    overrides = await ctx.overrides.active()
    picture = ApplicationPicture(config, ctx.fleet, name, app, now, overrides, ctx.discovery)
    hosts = picture.hosts
    if q:
        needle = q.casefold()
        hosts = [h for h in hosts if needle in h.casefold()]
    if label is not None:
        wanted = parse_labels(label)
        hosts = [h for h in hosts if _labelled(config, h, wanted)]
    if status is not None:
        hosts = [h for h in hosts if status in set(picture.host_buckets(h))]
    rows = []
    for host in hosts[offset : offset + limit]:
        host_status = ctx.fleet.host_status(host, now)
        rows.append(
            GridRowOut(
                host=host,
                online=picture.online(host),
                state=host_status.state if host_status else None,
                cells=[_cell(picture.cell(row, host)) for row in picture.services],
            )
        )
    return GridOut(
        application=name,
        description=app.description,
        environment=app.environment,
        owners=list(app.owners),
        services=[
            GridServiceOut(
                name=row.name,
                provider=row.provider,
                target=row.target,
                policy=row.policy,
                discovered=row.discovered,
            )
            for row in picture.services
        ],
        commands=_commands(app),
        counts=counts_view(picture.counts()),
        total=len(hosts),
        offset=offset,
        rows=rows,
    )


def _matches(
    name: str, app: Application, q: str | None, owner: str | None, environment: str | None
) -> bool:
    if owner is not None and owner not in app.owners:
        return False
    if environment is not None and app.environment != environment:
        return False
    if not q:
        return True
    needle = q.casefold()
    return any(needle in text.casefold() for text in (name, app.description, *app.owners))


def _labelled(config: FleetConfig, host: str, wanted: Mapping[str, str]) -> bool:
    carried = host_labels(config, host)
    return all(carried.get(key) == value for key, value in wanted.items())


def _host_totals(
    ctx: Ctx, caller: Caller, config: FleetConfig | None, wanted: Mapping[str, str] | None
) -> HostTotalsOut:
    seen = Visibility(ctx, caller)
    now = ctx.clock.now()
    by_state = dict.fromkeys(Lifecycle, 0)
    for host in ctx.fleet.hosts:
        if wanted is not None and (config is None or not _labelled(config, host, wanted)):
            continue
        state = ctx.fleet.lifecycle(host, now)
        if state is not None and seen.host(host):
            by_state[state] += 1
    return HostTotalsOut(
        online=by_state[Lifecycle.ONLINE],
        offline=by_state[Lifecycle.OFFLINE],
        lost=by_state[Lifecycle.LOST],
        total=sum(by_state.values()),
    )


def _cell(cell: Cell | None) -> CellOut | None:
    if cell is None:
        return None
    override = cell.override
    return CellOut(
        status=cell.status,
        target=cell.target,
        override=OverrideBadgeOut(
            id=override.id,
            status=override.status,
            reason=override.reason,
            created_by=override.created_by,
            expires_at=override.expires_at,
        )
        if override
        else None,
        drift=cell.drift,
        bucket=cell.bucket,
        since=cell.since,
        message=cell.message,
    )


def _commands(app: Application) -> list[CommandSpecOut]:
    return [
        CommandSpecOut(
            name=name,
            description=spec.description,
            timeout_s=spec.timeout,
            params=[
                ParamOut(
                    name=param,
                    type=p.type,
                    description=p.description,
                    required=p.required,
                    default=p.default,
                    minimum=p.minimum,
                    maximum=p.maximum,
                    choices=list(p.choices) if p.choices is not None else None,
                    pattern=p.pattern,
                )
                for param, p in sorted(spec.params.items())
            ],
        )
        for name, spec in sorted(app.commands.items())
    ]
