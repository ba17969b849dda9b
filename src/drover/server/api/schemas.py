"""Request and response bodies of the REST API (also what /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from drover.model.action import ActionKind, ActionState, HostOutcome
from drover.model.approval import ApprovalState, Decision
from drover.model.command import MAX_STRING_VALUE, text_problem
from drover.model.names import HostId, Name
from drover.model.rollout import RolloutState
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus
from drover.model.strategy import Strategy
from drover.server.fleet import Lifecycle

# An id as the server makes them (path parameters); anything else (a NUL, say) is a 422, never
# a database error.
ActionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
OverrideId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
HostParam = Annotated[HostId, Path(description="a host id")]


def _text(value: str) -> str:
    """Text that can be stored and shown: a parameter's name or value. Anything else is a 422
    here, never an action stored that then breaks every listing that shows it."""
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _value_text(value: object) -> object:
    """A string value checked before the union of types is tried: one error that says why,
    not one per type it is not."""
    if isinstance(value, str):
        _text(value)
        if len(value) > MAX_STRING_VALUE:
            raise ValueError(f"longer than {MAX_STRING_VALUE} characters")
    return value


# Text a person wrote, checked as `_text` checks it.
Text = Annotated[str, AfterValidator(_text)]
MAX_PARAMS = 64
ParamKey = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_text)]
ParamIn = Annotated[
    Annotated[str, StringConstraints(max_length=MAX_STRING_VALUE)]
    | StrictBool
    | int
    | Annotated[float, Field(allow_inf_nan=False)],
    BeforeValidator(_value_text),
]


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


class CountsOut(Body):
    ok: int = Field(description="at their target")
    drifted: int = Field(description="reported, and not at their target")
    failed: int
    unknown: int = Field(description="host not online, or not reported")


class HostOut(Body):
    host: HostId
    labels: dict[str, str] = Field(description="from the config's hosts")
    counts: CountsOut = Field(
        description="the services it reports, by how each stands by its agent's judgement"
    )
    online: bool
    state: Lifecycle = Field(description="online, offline (missed heartbeats), lost (silent 1 h)")
    state_since: datetime
    state_cause: str
    hostname: str
    kind: Literal["agent", "ssh-target"] = Field(
        default="agent", description="ssh-target: no agent; managed over SSH by `via`'s"
    )
    via: HostId | None = Field(default=None, description="ssh-target: the host that reaches it")
    agent_version: str
    started_at: datetime
    last_heartbeat: datetime
    desired_revision: str | None
    services: list[ServiceOnHost] = Field(description="empty when asked for brief")


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
    # At least a millisecond: times are kept to the microsecond; a shorter one would be none.
    deadline_s: float = Field(
        default=600, ge=0.001, le=7 * 24 * 3600, description="of the whole action"
    )


class ActionIn(TargetIn):
    kind: ActionKind
    command: Name | None = Field(
        default=None, description="kind command: which of the application's commands"
    )
    params: dict[ParamKey, ParamIn] | None = Field(
        default=None,
        max_length=MAX_PARAMS,
        description="kind command: its parameters by name; a string is accepted for any type "
        '("3" for an integer, "true" for a boolean)',
    )


class PlanOut(Body):
    application: Name
    services: list[Name] = Field(description="empty: every service of it each host runs")
    batches: list[list[HostId]]
    strategy: Strategy


class CancelIn(Body):
    abort_running: bool = Field(
        default=False,
        description="false: hosts already sent finish; true: each host sent the action and "
        "not yet answered is recorded cancelled at once and sent an abort: a command running "
        "there is killed (its process group), services not yet reached are skipped, an action "
        "not yet begun never runs. The host's answer then replaces `cancelled` with what it "
        "really did. Also after a cancel without it, to abort the hosts still running.",
    )


class CancelOut(Body):
    abort_running: bool = Field(description="the running hosts were told to abort")
    requested_by: str = Field(description="who asked (last: the one who asked for the abort)")


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
    output_chunks: int | None = Field(
        default=None,
        description="a command's: the chunks its whole output came in (see /output); "
        "`output` is only its tail",
    )
    abort_requested_at: datetime | None = Field(
        default=None, description="a cancel decided to abort this host (null: none did)"
    )
    abort_sent_at: datetime | None = Field(
        default=None,
        description="the bus stored that abort; null while it is still to be sent (the bus "
        "was out of reach: it is sent once it is back)",
    )


class VoteOut(Body):
    approver: str
    decision: Decision
    at: datetime
    comment: str = Field(description="an approval's comment; a rejection's reason")
    via: str = Field(description="how the approver signed in: token, session, ...")


class ApprovalPolicyOut(Body):
    name: str = Field(description="the rule's name, or where it is written (file:line)")
    applications: list[str]
    environments: list[str]
    kinds: list[str]
    required: int = Field(description="distinct approvers, none of them the requester")
    from_groups: list[str] = Field(description="approvers must be in one; empty: any approver")
    approved_by: list[str] = Field(description="those whose approval counts toward it")
    satisfied: bool


class ApprovalOut(Body):
    action_id: str
    application: Name
    environment: str = Field(description="the application's, when the action was requested")
    kind: str = Field(description="start, stop, restart, or command:<name>")
    state: ApprovalState = Field(description="pending, approved, rejected, expired, cancelled")
    requested_by: str
    requested_at: datetime
    open_until: datetime = Field(description="not decided by then: expired, never runs")
    policies: list[ApprovalPolicyOut] = Field(
        description="every policy that covered the action when it was requested; all must be "
        "satisfied"
    )
    votes: list[VoteOut]
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None = Field(description="why it was rejected, expired or cancelled")


def _printable(value: str) -> str:
    # A NUL can be neither shown nor stored (PostgreSQL refuses it in text).
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value.strip()


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


class ApproveIn(Body):
    comment: Annotated[str, AfterValidator(_printable)] = Field(
        default="", max_length=500, description="shown with the approval"
    )


class RejectIn(Body):
    reason: Annotated[str, AfterValidator(_printable), AfterValidator(_not_blank)] = Field(
        min_length=1, max_length=500, description="why not: shown to the requester and everyone"
    )


class CommandOut(Body):
    name: Name
    params: dict[str, str | int | bool] = Field(description="every parameter, defaults included")
    argv: list[str] = Field(description="as rendered, sent and run")
    run_as: str | None = Field(description="user or user:group; null: the agent's user")
    timeout_s: float


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
    cancel: CancelOut | None = Field(default=None, description="null: nobody cancelled it")
    hosts: list[HostResultOut]
    released_at: datetime | None = Field(
        default=None,
        description="when its rollout began, for an approved one: its deadline counts from "
        "then; null: when it was requested",
    )
    approval: ApprovalOut | None = Field(default=None, description="null: it needed no approval")
    command: CommandOut | None = Field(default=None, description="kind command: what it runs")
    environment: str | None = Field(
        default=None,
        description="the application's when it was requested, which access to it is checked on "
        "(null: from before it was recorded)",
    )


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
    status: str = Field(description="ok, degraded (bus or config missing) or draining")
    bus_connected: bool
    config_active: bool
    draining: bool = Field(
        default=False, description="stopping: finishing what it has, taking nothing new"
    )


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
