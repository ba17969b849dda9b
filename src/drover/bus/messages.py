"""Every message on the wire: versioned pydantic models, encoded as JSON.

Readers ignore fields they do not know, so a newer sender can add fields without breaking an
older reader; a change that would break a reader bumps `v`.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from drover.bus.errors import MalformedMessage
from drover.model.action import ActionKind, HostOutcome
from drover.model.names import HostId, Name
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus

# Bytes of output in one OutputChunk, at most: well under NATS's 1 MiB payload once in base64.
MAX_CHUNK = 64 * 1024


# An X-Request-Id as the API takes it (or none): what may reach a log line from the wire.
CORRELATION_PATTERN = r"^[A-Za-z0-9._:-]{0,64}$"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class HostRecord(Message):
    """The agent's own record: who it is and that it is alive."""

    v: Literal[1] = 1
    host: HostId
    hostname: str
    agent_version: str
    started_at: AwareDatetime
    heartbeat_at: AwareDatetime
    heartbeat_interval: float = Field(gt=0)
    desired_revision: str | None = None
    # Its connection to the bus: the address nats-server sees it at, since when, and which
    # server (URL) it is connected to. Absent from agents older than these fields.
    address: str | None = None
    connected_since: AwareDatetime | None = None
    bus_server: str | None = None
    # `ssh-target`: a host without an agent, reported by the agent of host `via` (agent/ssh).
    kind: Literal["agent", "ssh-target"] = "agent"
    via: HostId | None = None


class ServiceState(Message):
    """What one service on one host is doing now."""

    v: Literal[1] = 1
    host: HostId
    application: Name
    service: Name
    provider: str
    status: ServiceStatus
    since: AwareDatetime
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    message: str = ""
    convergence: Convergence | None = None  # set by the reconciler; None: not judged yet


class DesiredService(Message):
    application: Name
    service: Name
    provider: str
    target: TargetStatus
    command: list[str] = Field(default_factory=list)  # provider process
    env: dict[str, str] = Field(default_factory=dict)  # provider process, script
    # variable → secret reference (model/secret.py), resolved by the agent as it starts the
    # process. Added within v1: an older agent ignores it and runs without those variables.
    secrets: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None  # provider process
    unit: str | None = None  # provider systemd
    status_command: list[str] = Field(default_factory=list)  # provider script
    start_command: list[str] = Field(default_factory=list)  # provider script
    stop_command: list[str] = Field(default_factory=list)  # provider script
    timeout: float = 30.0  # provider script: bound on each run
    check_interval: float = 10.0  # provider script
    stop_timeout: float = 10.0
    policy: Policy = Policy.ENFORCE
    max_attempts: int = 5


class SshTarget(Message):
    """A host this host's agent manages over SSH (config: hosts.<id>.ssh)."""

    host: HostId
    address: str
    port: int
    user: str
    host_key: str  # as in known_hosts: type and base64
    key: str | None = None  # a secret reference (model/secret.py), resolved by the agent
    password: str | None = None  # likewise
    sudo: bool = False
    check_interval: float = 10.0
    connect_timeout: float = 10.0


class DesiredState(Message):
    """Everything one host should run, at one config revision. Written by the server only."""

    v: Literal[1] = 1
    host: HostId
    revision: str
    services: list[DesiredService]
    # The hosts without an agent this host's agent manages. Added within v1: an older agent
    # ignores them, and they show as never seen.
    targets: list[SshTarget] = Field(default_factory=list)
    # When the server signed it: an agent takes none older than the one it holds, so an old
    # desired state put back on the bus (signed, but stale) changes nothing.
    issued_at: AwareDatetime | None = None


class UnitInfo(Message):
    """One unit of the host's systemd, as discovery sees it."""

    unit: str  # e.g. "nginx.service"
    description: str = ""
    slice: str = ""  # the Slice= it runs in; "" for unit types that have none (timers)
    # `X-Drover-*` keys from the unit file and its drop-ins (the last assignment wins)
    properties: dict[str, str] = Field(default_factory=dict)
    # No unit file of its own (a transient unit, an instance of a template): listed only while
    # loaded, so when it goes it is gone for good, and not kept as vanished unless the host's
    # desired state names it. Hosts that run one per job, login or connection would pile them up.
    ephemeral: bool = False
    vanished_since: AwareDatetime | None = None  # gone from the host since then


class UnitInventory(Message):
    """Every unit on one host, and those that disappeared from it. Written by that host's agent
    whenever the set of units (or what discovery reads of them) changes; never for a mere state
    change, which the per-service keys carry."""

    v: Literal[1] = 1
    host: HostId
    taken_at: AwareDatetime
    units: list[UnitInfo]


class CommandRun(Message):
    """A command as the agent runs it: rendered and checked by the server, run as it is."""

    name: Name
    argv: list[str] = Field(min_length=1)
    params: dict[str, str | int | bool] = Field(default_factory=dict)  # also in its environment
    run_as: str | None = None  # user or user:group; None: the agent's own
    timeout_s: float = Field(gt=0)
    output_limit: int = Field(gt=0)  # bytes of output kept; the rest is counted, not sent
    env: dict[str, str] = Field(default_factory=dict)  # added within v1, as `secrets`
    secrets: dict[str, str] = Field(default_factory=dict)  # variable → reference


class ActionRequest(Message):
    v: Literal[1] = 1
    action_id: str
    host: HostId
    kind: ActionKind
    application: Name
    services: list[Name]  # empty: every service of the application the host runs
    requested_by: str
    created_at: AwareDatetime
    deadline: AwareDatetime
    # kind `command` only. Added within v1: an older agent does not know the kind `command`, so
    # it drops such a request as malformed (counted, logged) and the host expires; it never
    # mistakes it for another kind.
    command: CommandRun | None = None
    # The id every log line of this action's path carries (ops.logging), echoed in results.
    correlation: str = Field("", pattern=CORRELATION_PATTERN)


class AbortRequest(Message):
    """Stop one action on one host, sent on the host's `abort_subject` when a cancel asks to
    abort what is running. The agent kills it if it runs, never starts it if it has not begun,
    and leaves a finished one as it is; either way it answers with an ActionResult."""

    v: Literal[1] = 1
    action_id: str
    host: HostId
    requested_by: str  # who asked for the abort: named in the host's output
    requested_at: AwareDatetime


class ActionResult(Message):
    v: Literal[1] = 1
    action_id: str
    host: HostId
    outcome: HostOutcome
    exit_code: int | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime
    duration_s: float = 0.0
    output: str = ""  # its tail; a command's whole output went as OutputChunks
    output_chunks: int = 0  # how many OutputChunks the command's output was sent in
    # Set (with outcome `rejected`) when the agent refused the request for what it was, not
    # for what it asked: unsigned, signature not the server's, addressed to another host.
    refused: str | None = None
    correlation: str = Field("", pattern=CORRELATION_PATTERN)  # the request's


class OutputChunk(Message):
    """A piece of a running command's output, in order: `seq` counts from 1 per action and
    host. Sent on the host's own subject; the server stores each seq once."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    v: Literal[1] = 1
    action_id: str
    host: HostId
    seq: int = Field(ge=1)
    data: bytes = Field(max_length=MAX_CHUNK)  # raw bytes, as the process wrote them


M = TypeVar("M", bound=Message)

OUTPUT_TAIL = 4096


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode()


def decode(kind: type[M], subject: str, data: bytes) -> M:
    """Parse a payload, or raise MalformedMessage saying what was wrong with it."""
    try:
        return kind.model_validate_json(data)
    except ValidationError as err:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise MalformedMessage(subject, kind.__name__, reason[:500]) from err


def tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
