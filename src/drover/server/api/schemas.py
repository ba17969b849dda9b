"""Request and response bodies of the REST API (also what /docs shows)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from drover.model.action import ActionKind, ActionState, HostOutcome
from drover.model.names import HostId, Name
from drover.model.rollout import RolloutState
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus
from drover.model.strategy import Strategy
from drover.server.fleet import Lifecycle


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceOnHost(Body):
    name: Name
    application: Name
    status: ServiceStatus
    since: datetime
    pid: int | None
    restarts: int
    message: str
    convergence: Convergence | None


class HostOut(Body):
    host: HostId
    online: bool
    state: Lifecycle = Field(description="online, offline (missed heartbeats), lost (silent 1 h)")
    state_since: datetime
    state_cause: str
    hostname: str
    agent_version: str
    started_at: datetime
    last_heartbeat: datetime
    desired_revision: str | None
    services: list[ServiceOnHost]


class OverrideOut(Body):
    id: str
    application: Name
    service: Name | None = Field(description="null: every service of the application")
    host: HostId | None = Field(description="null: every host it runs on")
    status: TargetStatus
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime


class OverrideIn(Body):
    application: Name
    service: Name | None = None
    host: HostId | None = None
    status: TargetStatus
    reason: str = Field(min_length=1, max_length=500, description="why: shown to everyone")
    duration_s: float = Field(default=4 * 3600, gt=0, le=30 * 24 * 3600)


class Placement(Body):
    host: HostId
    unit: str | None = Field(description="the systemd unit, for a service discovery found")
    target: TargetStatus = Field(description="in force here: the config's, or an override's")
    override: OverrideOut | None
    status: ServiceStatus | None = Field(description="null: not reported by the host")
    since: datetime | None
    pid: int | None
    message: str = Field(description="why, for a status that needs explaining")
    convergence: Convergence | None = Field(
        description="ok, converging, failed-to-converge, observed; null: not judged yet"
    )
    drift: bool
    host_online: bool


class ServiceOut(Body):
    name: Name
    provider: str
    target: TargetStatus = Field(description="as configured; a host's may be overridden")
    policy: Policy
    discovered: bool = Field(description="found by a discovery rule, not declared")
    drift: bool
    hosts: list[Placement]


class ApplicationOut(Body):
    name: Name
    description: str
    environment: Name
    owners: list[str]
    drift: bool
    services: list[ServiceOut]


class TargetIn(Body):
    application: Name
    service: Name | None = None
    hosts: list[HostId] | None = Field(
        default=None, min_length=1, description="default: every host it runs on"
    )
    groups: list[Name] | None = Field(
        default=None, min_length=1, description="only hosts in one of these host groups"
    )
    labels: dict[str, str] | None = Field(
        default=None, description="only hosts that carry every one of these labels"
    )
    strategy: Strategy | None = Field(
        default=None,
        description="batches, pause, health gate, failure threshold, per-host timeout; "
        "default: every host at once, stop at the first failure. Its deadline_s is the "
        "request's deadline_s.",
    )
    deadline_s: float = Field(
        default=600, gt=0, le=7 * 24 * 3600, description="of the whole action"
    )


class ActionIn(TargetIn):
    kind: ActionKind


class PlanOut(Body):
    application: Name
    services: list[Name] = Field(description="empty: every service of it each host runs")
    batches: list[list[HostId]]
    strategy: Strategy


class CancelIn(Body):
    abort_running: bool = Field(
        default=False,
        description="false: hosts already sent finish; true: stop waiting for them (they are "
        "recorded cancelled, and may have run in part)",
    )


class HostResultOut(Body):
    host: HostId
    outcome: HostOutcome
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    output: str
    batch: int = Field(description="its batch in the plan, from 0")
    sent_at: datetime | None = Field(description="released for dispatch; null: not yet")


class ActionOut(Body):
    id: str
    kind: ActionKind
    application: Name
    services: list[Name]
    state: ActionState
    requested_by: str
    created_at: datetime
    deadline: datetime
    strategy: Strategy | None
    rollout_state: RolloutState | None = Field(
        description="running, stopped, cancelled, expired, succeeded, failed"
    )
    halt_reason: str | None
    hosts: list[HostResultOut]


class ProblemOut(Body):
    file: str
    line: int
    column: int
    message: str


class ConfigErrorOut(Body):
    revision: str | None
    message: str
    at: datetime
    problems: list[ProblemOut]


class ConfigOut(Body):
    source: str
    active_revision: str | None
    active_since: datetime | None
    last_error: ConfigErrorOut | None
    discovery_problems: list[ProblemOut] = Field(
        description="discovery rules of the active revision that match nothing, or that claim "
        "units another application has; the revision stays active"
    )


class UnitOut(Body):
    host: HostId
    unit: str
    description: str
    slice: str
    properties: dict[str, str] = Field(description="X-Drover-* keys of its unit files")
    application: Name | None = Field(description="null: unassigned")
    service: Name | None
    assigned_by: str = Field(description="declared, discover[<n>], or empty when unassigned")
    vanished_since: datetime | None = Field(description="null: still on the host")


class InfoOut(Body):
    version: str
    commit: str
    build_time: str | None
    started_at: datetime
    now: datetime
    uptime_s: float
    counters: dict[str, int]


class HealthOut(Body):
    status: str
    bus_connected: bool
    config_active: bool


class ErrorOut(Body):
    detail: str


class AuditOut(Body):
    id: int
    at: datetime
    actor: str = Field(description="a person, agent:<host>, or drover for its own decisions")
    kind: str
    subject: str = Field(description="the action, override or revision it is about")
    detail: dict[str, object]
    source: str = Field(description="the client's address; empty for the server's own")
    correlation: str = Field(description="the request's X-Request-Id")
