"""The /api/v1 routes of the fleet, /healthz and /info.

Every route asks who the caller is (`Caller`, 401 without valid credentials) and whether they
may touch what they name (`authorize`, 403 on the audit trail), before it touches it:

- reading an application, an action or an override needs `read` on its application (in the
  application's environment); lists show only what the caller may read, never a 403;
- actions, cancelling them and overrides need `act` on the application;
- a plan (a dry run) needs `read`: it changes nothing;
- hosts and units are visible to a caller who may read an application placed on the host or
  reported there (every host with `read` unscoped), showing only those applications' services;
- the config status needs `read` in any scope (it is about the repository everyone edits);
- decommissioning a host needs `admin` without a scope, the audit trail `audit` without one.

A request that names an application is authorized on that name before anything is looked up,
so the answer (403 or 404) never tells an outsider whether it exists; one that names an object
by id looks it up first (404 if there is none: ids are random, they reveal nothing) and is
then authorized on the object's application — in the environment recorded with it when it
was requested (an action), not the one the application has now: moving an application does
not hand its history to the people of its new environment.

Ids and host names in paths must look like ones the server makes (422 otherwise), so junk such
as a NUL never reaches the database.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from drover.config.errors import ConfigProblem
from drover.config.placement import host_labels
from drover.model.access import Permission
from drover.model.action import ActionKind, ActionState
from drover.model.names import HostId
from drover.model.strategy import Strategy
from drover.ops.buildinfo import build_info
from drover.server.api.access import Caller, MaybeCaller, authorize, environment_of
from drover.server.api.deps import Ctx
from drover.server.api.schemas import (
    ActionId,
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
    HostParam,
    InfoOut,
    OverrideId,
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
from drover.server.api.visibility import Visibility
from drover.server.context import ServerContext
from drover.server.decommission import decommission
from drover.server.errors import NotFound, Unprocessable
from drover.server.fleet import Lifecycle
from drover.server.health import placed_hosts
from drover.server.targeting import parse_labels

DENIED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid credentials"},
    403: {"model": ErrorOut, "description": "not allowed: says which role is missing"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**DENIED, 404: {"model": ErrorOut}}
# Text of a query that reaches the database: a NUL is a 422 here (PostgreSQL refuses it).
NO_NUL = r"^[^\x00]*$"

api = APIRouter(prefix="/api/v1")
system = APIRouter()


TOTAL_COUNT = "X-Total-Count"


@api.get(
    "/hosts",
    response_model=list[HostOut],
    responses={
        **DENIED,
        200: {"headers": {TOTAL_COUNT: {"description": "hosts that pass the filters"}}},
    },
)
async def list_hosts(
    ctx: Ctx,
    caller: Caller,
    response: Response,
    q: Annotated[str | None, Query(max_length=200, description="a part of its id")] = None,
    state: Lifecycle | None = None,
    label: Annotated[
        str | None, Query(max_length=1000, description="k=v,k2=v2: only hosts with every one")
    ] = None,
    application: Annotated[
        str | None, Query(max_length=200, description="only hosts it runs on or reports")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    brief: Annotated[bool, Query(description="without each host's services")] = False,
) -> list[HostOut]:
    """The hosts the caller may see, in id order, each with the services of applications they
    may read; filtered, then paged (the total before paging in `X-Total-Count`)."""
    now = ctx.clock.now()
    seen = Visibility(ctx, caller)
    config = ctx.config.active
    wanted = parse_labels(label) if label is not None else None
    on = None
    if application is not None:
        await authorize(ctx, caller, Permission.READ, application)
        on = _hosts_of_application(ctx, application)
    needle = q.casefold() if q else None
    chosen = []
    for host in sorted(ctx.fleet.hosts):
        if needle and needle not in host.casefold():
            continue
        if on is not None and host not in on:
            continue
        labels = host_labels(config, host) if config else {}
        if wanted is not None and any(labels.get(k) != v for k, v in wanted.items()):
            continue
        status = ctx.fleet.host_status(host, now)
        if status is None or (state is not None and status.state is not state):
            continue
        if seen.host(host):
            chosen.append((host, labels))
    response.headers[TOTAL_COUNT] = str(len(chosen))
    page = chosen[offset : offset + limit] if limit is not None else chosen[offset:]
    views = (
        host_view(ctx.fleet, h, now, ctx.discovery, labels, brief, seen.application)
        for h, labels in page
    )
    return [v for v in views if v is not None]


def _hosts_of_application(ctx: ServerContext, name: str) -> set[str]:
    """Where it is placed by the active config, or reports a service."""
    config = ctx.config.active
    app = config.applications.get(name) if config else None
    placed = set(placed_hosts(config, ctx.fleet, name, app)) if config and app else set()
    reporting = {
        h for h in ctx.fleet.hosts if any(s.application == name for s in ctx.fleet.services_of(h))
    }
    return placed | reporting


@api.get("/hosts/{host}", response_model=HostOut, responses=NOT_FOUND)
async def get_host(host: HostParam, ctx: Ctx, caller: Caller) -> HostOut:
    seen = Visibility(ctx, caller)
    await seen.require_host(host)
    config = ctx.config.active
    labels = host_labels(config, host) if config else {}
    now = ctx.clock.now()
    view = host_view(ctx.fleet, host, now, ctx.discovery, labels, readable=seen.application)
    if view is None:
        raise NotFound(f"no host {host!r}")
    return view


@api.delete(
    "/hosts/{host}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 409: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def decommission_host(host: HostParam, ctx: Ctx, caller: Caller) -> Response:
    """Remove a host that is not online from the fleet, for good (the audit keeps it); its
    bus key, if it has one, is revoked."""
    await authorize(ctx, caller, Permission.ADMIN)
    await decommission(ctx.bus, ctx.fleet, ctx.audit, ctx.clock, host, caller.name)
    ctx.desired.forget(host)  # should it come back, it is written its desired state again
    with contextlib.suppress(NotFound):  # enrolled before keys were, or revoked already
        await ctx.enrollment.revoke(host, caller.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get("/applications", response_model=list[ApplicationOut], responses=DENIED)
async def list_applications(ctx: Ctx, caller: Caller) -> list[ApplicationOut]:
    config = ctx.config.active
    if config is None:
        return []
    now = ctx.clock.now()
    overrides = await ctx.overrides.active()
    return [
        application_view(config, ctx.fleet, name, app, now, overrides, ctx.discovery)
        for name, app in sorted(config.applications.items())
        if caller.may(Permission.READ, name, app.environment)
    ]


@api.get("/applications/{name}", response_model=ApplicationOut, responses=NOT_FOUND)
async def get_application(name: str, ctx: Ctx, caller: Caller) -> ApplicationOut:
    await authorize(ctx, caller, Permission.READ, name)
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
    responses={**NOT_FOUND, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def create_action(body: ActionIn, ctx: Ctx, caller: Caller) -> ActionOut:
    await authorize(ctx, caller, Permission.ACT, body.application)
    action = await ctx.orchestrator.submit(
        kind=body.kind,
        application=body.application,
        service=body.service,
        hosts=body.hosts,
        requested_by=caller.name,
        deadline=timedelta(seconds=body.deadline_s),
        strategy=body.strategy,
        groups=body.groups,
        labels=body.labels,
        command=body.command,
        params=body.params,
    )
    return action_view(action)


@api.post(
    "/actions/plan",
    response_model=PlanOut,
    responses={**NOT_FOUND, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def plan_action(body: TargetIn, ctx: Ctx, caller: Caller) -> PlanOut:
    """A dry run: the hosts an action would reach, batch by batch. Nothing is stored or sent."""
    await authorize(ctx, caller, Permission.READ, body.application)
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
    action_id: ActionId, ctx: Ctx, caller: Caller, body: CancelIn | None = None
) -> ActionOut:
    """Hosts not yet sent are skipped; running ones finish, or with `abort_running` are sent an
    abort (also after a cancel without it). Answers once the cancel has been acted on: the
    hosts skipped, and those given an abort (`abort_requested_at`, `abort_sent_at`)."""
    found = await ctx.store.get(action_id)
    if found is None:
        raise NotFound(f"no action {action_id!r}")
    await authorize(ctx, caller, Permission.ACT, found.application, environment=found.environment)
    cancel = body or CancelIn()
    action = await ctx.orchestrator.cancel(action_id, cancel.abort_running, caller.name)
    return action_view(action)


@api.get("/actions", response_model=list[ActionOut], responses=DENIED)
async def list_actions(
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    application: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    state: ActionState | None = None,
    kind: ActionKind | None = None,
    requested_by: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> list[ActionOut]:
    """The most recent actions the caller may read (up to `limit` of them), newest first."""
    which = {"application": application, "kind": kind, "requested_by": requested_by}
    everything = caller.may(Permission.READ)
    if everything and state is None:
        return [action_view(a) for a in await ctx.store.recent(limit, **which)]
    # Filtered after reading (the state is derived from the hosts, a scoped caller's reach from
    # each action's environment, none recorded: the application's now): read more than asked,
    # so that a page still comes back.
    return [
        action_view(a)
        for a in await ctx.store.recent(500, **which)
        if (state is None or a.state is state)
        and (
            everything
            or caller.may(
                Permission.READ, a.application, a.environment or environment_of(ctx, a.application)
            )
        )
    ][:limit]


@api.get("/actions/{action_id}", response_model=ActionOut, responses=NOT_FOUND)
async def get_action(action_id: ActionId, ctx: Ctx, caller: Caller) -> ActionOut:
    action = await ctx.store.get(action_id)
    if action is None:
        raise NotFound(f"no action {action_id!r}")
    await authorize(
        ctx, caller, Permission.READ, action.application, environment=action.environment
    )
    return action_view(action)


@api.post(
    "/overrides",
    response_model=OverrideOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorOut, "description": "an approval policy covers it: request an action"},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
async def set_override(body: OverrideIn, ctx: Ctx, caller: Caller) -> OverrideOut:
    """Refused (409) when an approval policy covers the action it stands in for (`stopped`:
    stop, `running`: start): that goes through approval as an action, never round it."""
    await authorize(ctx, caller, Permission.ACT, body.application)
    override = await ctx.overrides.set(
        application=body.application,
        service=body.service,
        host=body.host,
        status=body.status,
        reason=body.reason,
        duration=timedelta(seconds=body.duration_s),
        by=caller.name,
    )
    return override_view(override)


@api.get("/overrides", response_model=list[OverrideOut], responses=DENIED)
async def list_overrides(ctx: Ctx, caller: Caller) -> list[OverrideOut]:
    seen = Visibility(ctx, caller)
    return [
        override_view(o) for o in await ctx.overrides.active() if seen.application(o.application)
    ]


@api.delete("/overrides/{override_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def clear_override(override_id: OverrideId, ctx: Ctx, caller: Caller) -> Response:
    found = next((o for o in await ctx.overrides.active() if o.id == override_id), None)
    if found is None:
        raise NotFound(f"no override {override_id!r} in force")
    await authorize(ctx, caller, Permission.ACT, found.application)
    await ctx.overrides.clear(override_id, by=caller.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.get("/config", response_model=ConfigOut, responses=DENIED)
async def get_config(ctx: Ctx, caller: Caller) -> ConfigOut:
    if not caller.may_somewhere(Permission.READ):
        await authorize(ctx, caller, Permission.READ)  # denies, on the record
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
    caller: Caller,
    host: Annotated[HostId | None, Query(description="one host only")] = None,
    state: Annotated[UnitState | None, Query(description="only units in this state")] = None,
) -> list[UnitOut]:
    """Every systemd unit the agents reported, and the application each belongs to; to a
    scoped caller, only the units of applications they may read."""
    seen = Visibility(ctx, caller)
    if host is not None:
        await seen.require_host(host)
        if host not in ctx.fleet.hosts and host not in ctx.discovery.hosts():
            raise NotFound(f"no host {host!r}")
    hosts = [host] if host else ctx.discovery.hosts()
    units = [
        u
        for h in hosts
        for u in unit_views(h, ctx.discovery.units_of(h))
        if seen.everything or (u.application is not None and seen.application(u.application))
    ]
    if state == "assigned":
        return [u for u in units if u.application is not None and u.vanished_since is None]
    if state == "unassigned":
        return [u for u in units if u.application is None and u.vanished_since is None]
    if state == "vanished":
        return [u for u in units if u.vanished_since is not None]
    return units


@api.get("/audit", response_model=list[AuditOut], responses=DENIED)
async def list_audit(
    ctx: Ctx,
    caller: Caller,
    actor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    kind: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="a kind, or a prefix ending in '.'"),
    ] = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    correlation: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The audit trail, newest first."""
    await authorize(ctx, caller, Permission.AUDIT)
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
    """Open to everyone (load balancers): whether the server can do its work, and wants to:
    a draining server answers 503 so that new requests go to another."""
    health = HealthOut(
        status="ok",
        bus_connected=ctx.bus.is_connected,
        config_active=ctx.config.active is not None,
        draining=ctx.draining.is_set(),
    )
    if health.draining:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        health = health.model_copy(update={"status": "draining"})
    elif not (health.bus_connected and health.config_active):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        health = health.model_copy(update={"status": "degraded"})
    return health


@system.get("/info", response_model=InfoOut)
async def info(ctx: Ctx, caller: MaybeCaller) -> InfoOut:
    """Open to everyone: version, build and uptime. The counters (message and error counts,
    which describe the fleet's traffic) only to a caller who may read something."""
    build = build_info()
    now = ctx.clock.now()
    counters = ctx.counters.snapshot() if caller and caller.may_somewhere(Permission.READ) else {}
    return InfoOut(
        version=build.version,
        commit=build.commit,
        build_time=build.build_time,
        started_at=ctx.started_at,
        now=now,
        uptime_s=(now - ctx.started_at).total_seconds(),
        counters=counters,
    )
