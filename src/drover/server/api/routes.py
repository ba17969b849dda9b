"""The /api/v1 routes, /healthz and /info."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from drover.config.errors import ConfigProblem
from drover.model.names import HostId
from drover.model.strategy import Strategy
from drover.ops.buildinfo import build_info
from drover.server.api.schemas import (
    ActionIn,
    ActionOut,
    ApplicationOut,
    AuditOut,
    CancelIn,
    ConfigErrorOut,
    ConfigOut,
    ErrorOut,
    HealthOut,
    HostOut,
    InfoOut,
    OverrideIn,
    OverrideOut,
    PlanOut,
    ProblemOut,
    TargetIn,
    UnitOut,
)
from drover.server.api.views import (
    action_view,
    application_view,
    host_view,
    override_view,
    unit_views,
)
from drover.server.context import ServerContext
from drover.server.decommission import decommission
from drover.server.errors import NotFound, Unprocessable


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServerContext, Depends(context)]
# Who asks. Until authentication exists (the operator-workflows issue), a name the client gives.
User = Annotated[str | None, Header(alias="X-Drover-User", max_length=200)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}

api = APIRouter(prefix="/api/v1")
system = APIRouter()


@api.get("/hosts", response_model=list[HostOut])
async def list_hosts(ctx: Ctx) -> list[HostOut]:
    now = ctx.clock.now()
    views = (host_view(ctx.fleet, host, now, ctx.discovery) for host in sorted(ctx.fleet.hosts))
    return [v for v in views if v is not None]


@api.get("/hosts/{host}", response_model=HostOut, responses=NOT_FOUND)
async def get_host(host: str, ctx: Ctx) -> HostOut:
    view = host_view(ctx.fleet, host, ctx.clock.now(), ctx.discovery)
    if view is None:
        raise NotFound(f"no host {host!r}")
    return view


@api.delete(
    "/hosts/{host}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def decommission_host(host: str, ctx: Ctx, user: User = None) -> Response:
    """Remove a host that is not online from the fleet, for good (the audit keeps it)."""
    await decommission(ctx.bus, ctx.fleet, ctx.audit, ctx.clock, host, user or "anonymous")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get("/applications", response_model=list[ApplicationOut])
async def list_applications(ctx: Ctx) -> list[ApplicationOut]:
    config = ctx.config.active
    if config is None:
        return []
    now = ctx.clock.now()
    overrides = await ctx.overrides.active()
    return [
        application_view(config, ctx.fleet, name, app, now, overrides, ctx.discovery)
        for name, app in sorted(config.applications.items())
    ]


@api.get("/applications/{name}", response_model=ApplicationOut, responses=NOT_FOUND)
async def get_application(name: str, ctx: Ctx) -> ApplicationOut:
    config = ctx.config.active
    if config is None or name not in config.applications:
        raise NotFound(f"no application {name!r}")
    overrides = await ctx.overrides.active()
    app = config.applications[name]
    return application_view(config, ctx.fleet, name, app, ctx.clock.now(), overrides, ctx.discovery)


@api.post(
    "/actions",
    response_model=ActionOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 422: {"model": ErrorOut}},
)
async def create_action(body: ActionIn, ctx: Ctx, user: User = None) -> ActionOut:
    action = await ctx.orchestrator.submit(
        kind=body.kind,
        application=body.application,
        service=body.service,
        hosts=body.hosts,
        requested_by=user or "anonymous",
        deadline=timedelta(seconds=body.deadline_s),
        strategy=body.strategy,
        groups=body.groups,
        labels=body.labels,
    )
    return action_view(action)


@api.post(
    "/actions/plan", response_model=PlanOut, responses={**NOT_FOUND, 422: {"model": ErrorOut}}
)
async def plan_action(body: TargetIn, ctx: Ctx) -> PlanOut:
    """A dry run: the hosts an action would reach, batch by batch. Nothing is stored or sent."""
    strategy = (body.strategy or Strategy()).model_copy(update={"deadline_s": body.deadline_s})
    target, batches = ctx.orchestrator.plan(
        body.application, body.service, body.hosts, strategy, body.groups, body.labels
    )
    return PlanOut(
        application=target.application,
        services=target.services,
        batches=batches,
        strategy=strategy,
    )


@api.post(
    "/actions/{action_id}/cancel",
    response_model=ActionOut,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}},
)
async def cancel_action(
    action_id: str, ctx: Ctx, body: CancelIn | None = None, user: User = None
) -> ActionOut:
    """Hosts not yet sent are skipped; running ones finish, or are given up on."""
    cancel = body or CancelIn()
    action = await ctx.orchestrator.cancel(action_id, cancel.abort_running, user or "anonymous")
    return action_view(action)


@api.get("/actions", response_model=list[ActionOut])
async def list_actions(
    ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[ActionOut]:
    return [action_view(a) for a in await ctx.store.recent(limit)]


@api.get("/actions/{action_id}", response_model=ActionOut, responses=NOT_FOUND)
async def get_action(action_id: str, ctx: Ctx) -> ActionOut:
    action = await ctx.store.get(action_id)
    if action is None:
        raise NotFound(f"no action {action_id!r}")
    return action_view(action)


@api.post(
    "/overrides",
    response_model=OverrideOut,
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, 422: {"model": ErrorOut}},
)
async def set_override(body: OverrideIn, ctx: Ctx, user: User = None) -> OverrideOut:
    override = await ctx.overrides.set(
        application=body.application,
        service=body.service,
        host=body.host,
        status=body.status,
        reason=body.reason,
        duration=timedelta(seconds=body.duration_s),
        by=user or "anonymous",
    )
    return override_view(override)


@api.get("/overrides", response_model=list[OverrideOut])
async def list_overrides(ctx: Ctx) -> list[OverrideOut]:
    return [override_view(o) for o in await ctx.overrides.active()]


@api.delete("/overrides/{override_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def clear_override(override_id: str, ctx: Ctx, user: User = None) -> Response:
    await ctx.overrides.clear(override_id, by=user or "anonymous")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get("/config", response_model=ConfigOut)
async def get_config(ctx: Ctx) -> ConfigOut:
    sync = ctx.config
    error = sync.last_error
    return ConfigOut(
        source=sync.source.description,
        active_revision=sync.active.revision if sync.active else None,
        active_since=sync.active_since,
        last_error=ConfigErrorOut(
            revision=error.revision,
            message=error.message,
            at=error.at,
            problems=[_problem(p) for p in error.problems],
        )
        if error
        else None,
        discovery_problems=[_problem(p) for p in ctx.discovery.problems()],
    )


UnitState = Literal["assigned", "unassigned", "vanished"]


@api.get("/units", response_model=list[UnitOut], responses=NOT_FOUND)
async def list_units(
    ctx: Ctx,
    host: Annotated[HostId | None, Query(description="one host only")] = None,
    state: Annotated[UnitState | None, Query(description="only units in this state")] = None,
) -> list[UnitOut]:
    """Every systemd unit the agents reported, and the application each belongs to."""
    if host is not None and host not in ctx.fleet.hosts and host not in ctx.discovery.hosts():
        raise NotFound(f"no host {host!r}")
    hosts = [host] if host else ctx.discovery.hosts()
    units = [u for h in hosts for u in unit_views(h, ctx.discovery.units_of(h))]
    if state == "assigned":
        return [u for u in units if u.application is not None and u.vanished_since is None]
    if state == "unassigned":
        return [u for u in units if u.application is None and u.vanished_since is None]
    if state == "vanished":
        return [u for u in units if u.vanished_since is not None]
    return units


@api.get("/audit", response_model=list[AuditOut])
async def list_audit(
    ctx: Ctx,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[
        str | None, Query(max_length=64, description="a kind, or a prefix ending in '.'")
    ] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    correlation: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The audit trail, newest first."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Unprocessable(f"{name}: give a time zone, e.g. 2026-11-23T12:00:00Z")
    entries = await ctx.audit.query(
        actor=actor,
        kind=kind,
        subject=subject,
        correlation=correlation,
        since=since,
        until=until,
        limit=limit,
    )
    return [AuditOut.model_validate(e, from_attributes=True) for e in entries]


def _problem(problem: ConfigProblem) -> ProblemOut:
    return ProblemOut(
        file=problem.file, line=problem.line, column=problem.column, message=problem.message
    )


@system.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def healthz(ctx: Ctx, response: Response) -> HealthOut:
    health = HealthOut(
        status="ok",
        bus_connected=ctx.bus.is_connected,
        config_active=ctx.config.active is not None,
    )
    if not (health.bus_connected and health.config_active):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        health = health.model_copy(update={"status": "degraded"})
    return health


@system.get("/info", response_model=InfoOut)
async def info(ctx: Ctx) -> InfoOut:
    build = build_info()
    now = ctx.clock.now()
    return InfoOut(
        version=build.version,
        commit=build.commit,
        build_time=build.build_time,
        started_at=ctx.started_at,
        now=now,
        uptime_s=(now - ctx.started_at).total_seconds(),
        counters=ctx.counters.snapshot(),
    )
