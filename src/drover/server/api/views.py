"""Builds API views from the fleet picture and the active config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from drover.bus.messages import ServiceState, UnitInfo
from drover.config.schema import Application, FleetConfig
from drover.model.approval import Approval
from drover.model.override import Override
from drover.model.status import Convergence, ServiceStatus
from drover.server.api.schemas import (
    ActionOut,
    ApplicationOut,
    ApprovalOut,
    ApprovalPolicyOut,
    CountsOut,
    HostOut,
    OverrideOut,
    Placement,
    ServiceOnHost,
    ServiceOut,
    UnitOut,
    VoteOut,
)
from drover.server.discovery.matching import HostUnits
from drover.server.discovery.tracker import Discovery
from drover.server.fleet import FleetView
from drover.server.health import ApplicationPicture, Bucket, Cell, Counts
from drover.store.actions import Action


def host_view(
    fleet: FleetView,
    host: str,
    now: datetime,
    discovery: Discovery | None = None,
    labels: Mapping[str, str] | None = None,
    brief: bool = False,
    readable: Callable[[str], bool] = lambda _application: True,
) -> HostOut | None:
    """The host as it stands, with the services of the applications `readable` says the caller
    may read (listed, or with `brief` only counted)."""
    status = fleet.host_status(host, now)
    if status is None:
        return None
    record = status.record
    reported = [s for s in fleet.services_of(host) if readable(s.application)]
    counts = Counts()
    for state in reported:
        counts.add(_reported_bucket(state, status.online))
    view = HostOut(
        host=host,
        labels=dict(labels or {}),
        counts=counts_view(counts),
        online=status.online,
        state=status.state,
        state_since=status.since,
        state_cause=status.cause,
        hostname=record.hostname,
        kind=record.kind,
        via=record.via,
        agent_version=record.agent_version,
        started_at=record.started_at,
        last_heartbeat=record.heartbeat_at,
        desired_revision=record.desired_revision,
        services=[]
        if brief
        else [
            ServiceOnHost(
                name=s.service,
                application=s.application,
                status=s.status,
                since=s.since,
                pid=s.pid,
                restarts=s.restarts,
                message=s.message,
                convergence=s.convergence,
            )
            for s in reported
        ]
        + [
            ServiceOnHost(
                name=claim.service,
                application=claim.application,
                status=ServiceStatus.VANISHED,
                since=claim.unit.vanished_since,
                pid=None,
                restarts=0,
                message=f"{claim.unit.unit} is gone from the host",
                convergence=None,
            )
            for claim in (discovery.claims(host) if discovery else [])
            if claim.unit.vanished_since is not None and readable(claim.application)
        ],
    )
    return view


def counts_view(counts: Counts) -> CountsOut:
    return CountsOut(
        ok=counts.ok, drifted=counts.drifted, failed=counts.failed, unknown=counts.unknown
    )


def _reported_bucket(state: ServiceState, host_online: bool) -> Bucket:
    """A reported service's bucket by its agent's own judgement (it knows the target in force
    there): a host's row counts what it reports, without the config's view of what it should."""
    if state.status is ServiceStatus.FAILED:
        return Bucket.FAILED
    if not host_online or state.status is ServiceStatus.UNKNOWN:
        return Bucket.UNKNOWN
    drifted = state.convergence not in (None, Convergence.OK)
    return Bucket.DRIFTED if drifted else Bucket.OK


def application_view(
    config: FleetConfig,
    fleet: FleetView,
    name: str,
    app: Application,
    now: datetime,
    overrides: Sequence[Override] = (),
    discovery: Discovery | None = None,
) -> ApplicationOut:
    picture = ApplicationPicture(config, fleet, name, app, now, overrides, discovery)
    services = []
    for row in picture.services:
        cells = (picture.cell(row, host) for host in sorted(row.hosts))
        placements = [placement_view(c) for c in cells if c is not None]
        services.append(
            ServiceOut(
                name=row.name,
                provider=row.provider,
                target=row.target,
                policy=row.policy,
                discovered=row.discovered,
                drift=any(p.drift for p in placements),
                hosts=placements,
            )
        )
    return ApplicationOut(
        name=name,
        description=app.description,
        environment=app.environment,
        owners=list(app.owners),
        drift=any(s.drift for s in services),
        services=services,
    )


def placement_view(cell: Cell) -> Placement:
    return Placement(
        host=cell.host,
        unit=cell.unit,
        target=cell.target,
        override=override_view(cell.override) if cell.override else None,
        status=cell.status,
        since=cell.since,
        pid=cell.pid,
        message=cell.message,
        convergence=cell.convergence,
        drift=cell.drift,
        host_online=cell.host_online,
    )


def unit_views(host: str, units: HostUnits) -> list[UnitOut]:
    """Every unit of a host, with the application it belongs to, in unit order."""

    def view(unit: UnitInfo, app: str | None, service: str | None, by: str) -> UnitOut:
        return UnitOut(
            host=host,
            unit=unit.unit,
            description=unit.description,
            slice=unit.slice,
            properties=dict(unit.properties),
            application=app,
            service=service,
            assigned_by=by,
            vanished_since=unit.vanished_since,
        )

    views = [view(d.unit, d.application, d.service, "declared") for d in units.declared]
    views += [
        view(c.unit, c.application, c.service, f"discover[{c.rule_index}]") for c in units.claimed
    ]
    views += [view(unit, None, None, "") for unit in units.unassigned]
    return sorted(views, key=lambda u: u.unit)


def action_view(action: Action) -> ActionOut:
    # The store's dataclasses carry the same field names as the API's models.
    view = ActionOut.model_validate(replace(action, approval=None), from_attributes=True)
    if action.approval is None:
        return view
    return view.model_copy(update={"approval": approval_view(action.approval)})


def approval_view(approval: Approval) -> ApprovalOut:
    return ApprovalOut(
        action_id=approval.action_id,
        application=approval.subject.application,
        environment=approval.subject.environment,
        kind=approval.subject.kind,
        state=approval.state,
        requested_by=approval.requested_by,
        requested_at=approval.requested_at,
        open_until=approval.open_until,
        policies=[
            ApprovalPolicyOut(
                name=p.policy.name,
                applications=list(p.policy.applications),
                environments=list(p.policy.environments),
                kinds=list(p.policy.kinds),
                required=p.policy.required,
                from_groups=list(p.policy.from_groups),
                approved_by=list(p.approved_by),
                satisfied=p.satisfied,
            )
            for p in approval.progress()
        ],
        votes=[
            VoteOut(approver=v.approver, decision=v.decision, at=v.at, comment=v.comment, via=v.via)
            for v in approval.votes
        ],
        decided_at=approval.decided_at,
        decided_by=approval.decided_by,
        reason=approval.reason,
    )


def override_view(override: Override) -> OverrideOut:
    return OverrideOut.model_validate(override, from_attributes=True)
