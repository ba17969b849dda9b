"""Builds API views from the fleet picture and the active config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from drover.bus.messages import UnitInfo
from drover.config.placement import runs_on
from drover.config.schema import Application, FleetConfig
from drover.model.approval import Approval
from drover.model.override import Override, effective_target
from drover.model.status import Policy, ServiceStatus, TargetStatus, has_drift
from drover.server.api.schemas import (
    ActionOut,
    ApplicationOut,
    ApprovalOut,
    ApprovalPolicyOut,
    HostOut,
    OverrideOut,
    Placement,
    ServiceOnHost,
    ServiceOut,
    UnitOut,
    VoteOut,
)
from drover.server.discovery.matching import Claim, HostUnits
from drover.server.discovery.tracker import Discovery
from drover.server.fleet import FleetView
from drover.store.actions import Action


def host_view(
    fleet: FleetView, host: str, now: datetime, discovery: Discovery | None = None
) -> HostOut | None:
    status = fleet.host_status(host, now)
    if status is None:
        return None
    record = status.record
    return HostOut(
        host=host,
        online=status.online,
        state=status.state,
        state_since=status.since,
        state_cause=status.cause,
        hostname=record.hostname,
        agent_version=record.agent_version,
        started_at=record.started_at,
        last_heartbeat=record.heartbeat_at,
        desired_revision=record.desired_revision,
        services=[
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
            for s in fleet.services_of(host)
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
            if claim.unit.vanished_since is not None
        ],
    )


@dataclass
class _Service:
    """One row of an application view: a configured service, or one discovery found."""

    provider: str
    target: TargetStatus
    policy: Policy
    discovered: bool
    hosts: dict[str, Claim | None] = field(default_factory=dict)  # the claim, if discovered


def application_view(
    config: FleetConfig,
    fleet: FleetView,
    name: str,
    app: Application,
    now: datetime,
    overrides: Sequence[Override] = (),
    discovery: Discovery | None = None,
) -> ApplicationOut:
    placed = sorted(h for h in set(fleet.hosts) | set(config.hosts) if runs_on(config, app, h))
    rows = {
        svc_name: _Service(spec.provider, spec.target, spec.policy, False, dict.fromkeys(placed))
        for svc_name, spec in app.services.items()
    }
    for host, claim in discovery.claims_of(name) if discovery else []:
        row = rows.setdefault(
            claim.service, _Service("systemd", claim.rule.target, claim.rule.policy, True)
        )
        row.hosts[host] = claim
    services = []
    for svc_name, row in sorted(rows.items()):
        placements = [
            # rules scoped to different hosts may give one unit different targets
            _placement(
                fleet,
                name,
                svc_name,
                host,
                claim.rule.target if claim else row.target,
                claim,
                now,
                overrides,
            )
            for host, claim in sorted(row.hosts.items())
        ]
        services.append(
            ServiceOut(
                name=svc_name,
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


def _placement(
    fleet: FleetView,
    application: str,
    service: str,
    host: str,
    configured: TargetStatus,
    claim: Claim | None,
    now: datetime,
    overrides: Sequence[Override],
) -> Placement:
    state = fleet.service(host, application, service)
    host_status = fleet.host_status(host, now)
    target, override = effective_target(configured, overrides, application, service, host, now)
    vanished_since = claim.unit.vanished_since if claim else None
    if vanished_since is not None:
        current: ServiceStatus | None = ServiceStatus.VANISHED
        since: datetime | None = vanished_since
        message = f"{claim.unit.unit} is gone from the host" if claim else ""
    else:
        current = state.status if state else None
        since = state.since if state else None
        message = state.message if state else ""
    return Placement(
        host=host,
        unit=claim.unit.unit if claim else None,
        target=target,
        override=override_view(override) if override else None,
        status=current,
        since=since,
        pid=state.pid if state and vanished_since is None else None,
        message=message,
        convergence=state.convergence if state and vanished_since is None else None,
        drift=has_drift(current, target),
        host_online=bool(host_status and host_status.online),
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
