"""Builds API views from the fleet picture and the active config."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from drover.config.placement import runs_on
from drover.config.schema import Application, FleetConfig
from drover.model.override import Override, effective_target
from drover.model.status import has_drift
from drover.server.api.schemas import (
    ActionOut,
    ApplicationOut,
    HostOut,
    OverrideOut,
    Placement,
    ServiceOnHost,
    ServiceOut,
)
from drover.server.fleet import FleetView
from drover.store.actions import Action


def host_view(fleet: FleetView, host: str, now: datetime) -> HostOut | None:
    status = fleet.host_status(host, now)
    if status is None:
        return None
    record = status.record
    return HostOut(
        host=host,
        online=status.online,
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
        ],
    )


def application_view(
    config: FleetConfig,
    fleet: FleetView,
    name: str,
    app: Application,
    now: datetime,
    overrides: Sequence[Override] = (),
) -> ApplicationOut:
    hosts = sorted(h for h in set(fleet.hosts) | set(config.hosts) if runs_on(config, app, h))
    services = []
    for svc_name, spec in sorted(app.services.items()):
        placements = []
        for host in hosts:
            state = fleet.service(host, name, svc_name)
            status = fleet.host_status(host, now)
            current = state.status if state else None
            target, override = effective_target(spec.target, overrides, name, svc_name, host, now)
            placements.append(
                Placement(
                    host=host,
                    target=target,
                    override=override_view(override) if override else None,
                    status=current,
                    since=state.since if state else None,
                    pid=state.pid if state else None,
                    message=state.message if state else "",
                    convergence=state.convergence if state else None,
                    drift=has_drift(current, target),
                    host_online=bool(status and status.online),
                )
            )
        services.append(
            ServiceOut(
                name=svc_name,
                provider=spec.provider,
                target=spec.target,
                policy=spec.policy,
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


def action_view(action: Action) -> ActionOut:
    # The store's dataclasses carry the same field names as the API's models.
    return ActionOut.model_validate(action, from_attributes=True)


def override_view(override: Override) -> OverrideOut:
    return OverrideOut.model_validate(override, from_attributes=True)
