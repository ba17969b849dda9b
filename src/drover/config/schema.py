"""The YAML schema, as pydantic models. Unknown fields are errors, so typos never pass silently.

A config repository holds any number of `*.yaml` / `*.yml` files. Each file is a mapping with
any of the top-level keys `applications`, `hosts`, `groups`, `approvals` (four-eyes rules, see
`ApprovalRule`) and `access` (who may do what, see `AccessBinding`); the loader merges them,
and a name defined in two files is an error that points at both.

    applications:
      shop:
        owners: [team-shop]
        environment: production
        groups: [web]            # where it runs: host groups and/or host id globs (`hosts`)
        services:
          web:
            provider: process
            target: running
            command: [python3, -m, http.server, "8101"]
        discover:                # systemd units on its hosts that belong to it
          - units: ["shop-*.service"]
          - slice: shop.slice
          - properties: {X-Drover-Application: shop}
    hosts:
      web-01: {labels: {env: prod, dc: zrh}}
    groups:
      web: {hosts: ["web-*"], labels: {env: prod}}
    access:                      # people's groups (from drover or the OIDC provider) → roles
      team-shop:
        - {role: operator, applications: [shop], environments: [staging]}
        - {role: viewer}
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from drover.config.globs import glob_problem
from drover.model.access import GROUP_NAME_PATTERN, Grant, Role
from drover.model.action import ActionKind
from drover.model.approval import (
    COMMAND_PREFIX,
    DEFAULT_OPEN_FOR_S,
    MAX_OPEN_FOR_S,
    MAX_REQUIRED,
    ApprovalPolicy,
)
from drover.model.command import CommandSpec
from drover.model.names import HostId, Name
from drover.model.schedule import Cron, TimeZone, Window
from drover.model.secret import EnvName, EnvValue, SecretOnly
from drover.model.status import Policy, TargetStatus


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _glob(value: str) -> str:
    if problem := glob_problem(value):
        raise ValueError(problem)
    return value


# What the kernel can pass to exec: no NUL anywhere.
Arg = Annotated[str, AfterValidator(_no_nul)]
# systemd's unit name characters, and one of the unit types an application service can be.
UnitName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|target|mount|path|scope)$",
        max_length=255,
    ),
]


# A pattern over unit names (or slices): systemd's unit name characters and *, ?, [...].
UnitGlob = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9:_.\\@*?\[\]!-]+$", max_length=255),
    AfterValidator(_glob),
]
ValueGlob = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_glob)]
# The keys systemd leaves alone (it ignores X- keys), read from unit files and drop-ins.
DroverKey = Annotated[str, StringConstraints(pattern=r"^X-Drover-[A-Za-z0-9-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(_Strict):
    """One service of an application, as the agent should run it.

    `provider: process` (the default) runs `command` as a supervised process;
    `provider: systemd` manages an existing systemd `unit` through the manager's D-Bus API;
    `provider: script` runs `status` every `check_interval` seconds (exit 0: running, 3: stopped,
    anything else: failed) and `start` / `stop` when asked, each within `timeout`.
    """

    provider: Literal["process", "systemd", "script"] = "process"
    target: TargetStatus = TargetStatus.RUNNING
    command: list[Arg] = Field(default_factory=list, description="argv list; process only")
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="values, or {secret: scheme:reference}"
    )
    cwd: Arg | None = None
    unit: UnitName | None = Field(default=None, description="systemd unit name; systemd only")
    status: list[Arg] = Field(default_factory=list, description="argv; script only")
    start: list[Arg] = Field(default_factory=list, description="argv; script only")
    stop: list[Arg] = Field(default_factory=list, description="argv; script only")
    timeout: float = Field(default=30.0, gt=0, le=3600, description="per script run")
    check_interval: float = Field(default=10.0, ge=1, le=3600, description="script only")
    stop_timeout: float = Field(default=10.0, gt=0, le=600)
    policy: Policy = Field(default=Policy.ENFORCE, description="observe: report drift only")
    max_attempts: int = Field(default=5, ge=1, le=100, description="enforce: then give up")

    @model_validator(mode="after")
    def _fits_its_provider(self) -> ServiceSpec:
        given = {
            name
            for name in ("command", "env", "cwd", "unit", "status", "start", "stop")
            if getattr(self, name)
        }
        allowed, required = _PROVIDER_FIELDS[self.provider]
        if missing := [name for name in required if name not in given]:
            raise ValueError(f"a {self.provider} service needs {_names(missing)}")
        if stray := sorted(given - allowed):
            raise ValueError(f"{_names(stray)} not used by provider {self.provider}")
        return self


# provider → (fields it may have, fields it must have)
_PROVIDER_FIELDS: dict[str, tuple[set[str], list[str]]] = {
    "process": ({"command", "env", "cwd"}, ["command"]),
    "systemd": ({"unit"}, ["unit"]),
    "script": ({"status", "start", "stop", "env", "cwd"}, ["status", "start", "stop"]),
}


def _names(fields: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in fields)


class DiscoveryRule(_Strict):
    """Claims systemd units for the application. A unit is claimed when it matches every
    criterion the rule gives: a name glob in `units`, its `slice`, its `properties`.

    The rule looks on the application's hosts, or on its own `hosts` / `groups` when it names
    any. Claimed units become services of the application (provider systemd, named after the
    unit) with the rule's `target` and `policy`; `observe` by default, since drover did not
    start them.
    """

    units: list[UnitGlob] = Field(default_factory=list, description="unit name globs")
    slice: UnitGlob | None = Field(default=None, description="glob over the unit's Slice=")
    properties: dict[DroverKey, ValueGlob] = Field(
        default_factory=dict, description="X-Drover-* keys of the unit file or its drop-ins"
    )
    hosts: list[str] = Field(default_factory=list, description="host id globs")
    groups: list[Name] = Field(default_factory=list, description="host group names")
    target: TargetStatus = TargetStatus.RUNNING
    policy: Policy = Policy.OBSERVE
    max_attempts: int = Field(default=5, ge=1, le=100, description="enforce: then give up")

    @model_validator(mode="after")
    def _has_a_criterion(self) -> DiscoveryRule:
        if not (self.units or self.slice or self.properties):
            raise ValueError("a discovery rule needs 'units', 'slice' or 'properties'")
        return self

    @property
    def scoped(self) -> bool:
        """True when the rule says itself where it looks."""
        return bool(self.hosts or self.groups)


class Application(_Strict):
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    environment: Name = "default"
    hosts: list[str] = Field(default_factory=list, description="host id globs")
    groups: list[Name] = Field(default_factory=list, description="host group names")
    services: dict[Name, ServiceSpec] = Field(default_factory=dict)
    discover: list[DiscoveryRule] = Field(default_factory=list)
    commands: dict[Name, CommandSpec] = Field(
        default_factory=dict, description="operations run on its hosts on request"
    )

    @model_validator(mode="after")
    def _has_something_to_run(self) -> Application:
        if not (self.services or self.discover or self.commands):
            raise ValueError("an application needs 'services', 'discover' rules or 'commands'")
        placed = bool(self.hosts or self.groups)
        if self.commands and not (placed or self.discover):
            raise ValueError(
                "its commands run on no host: give the application 'hosts' or 'groups'"
            )
        for index, rule in enumerate(self.discover):
            if not (placed or rule.scoped):
                raise ValueError(
                    f"discover[{index}] looks on no host: give it or the application "
                    "'hosts' or 'groups'"
                )
        return self


_HOST_KEY = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}$"
)


def _host_key(value: str) -> str:
    if not _HOST_KEY.match(value):
        raise ValueError(
            "expected a public host key as known_hosts has it: its type and base64, such as "
            "'ssh-ed25519 AAAAC3…' (ssh-keyscan prints it)"
        )
    return value


class SshTargetSpec(_Strict):
    """A host that cannot run an agent, managed over SSH by the agent of `via`. It is a host of
    the fleet like any other (kind `ssh-target`): placed by its id and labels, acted on under
    the same permissions and approvals. Its credentials are secret references, resolved on
    `via`; its host key is known in advance (no trust on first use)."""

    via: HostId = Field(description="the host whose agent reaches it")
    address: str | None = Field(default=None, description="name or IP; default: the host id")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    host_key: Annotated[str, AfterValidator(_host_key)] = Field(
        description="its public host key, as in known_hosts: type and base64"
    )
    key: SecretOnly | None = Field(default=None, description="the private key, a secret")
    password: SecretOnly | None = Field(default=None, description="a secret")
    sudo: bool = Field(default=False, description="run systemctl and commands with sudo -n")
    check_interval: float = Field(default=10.0, ge=1, le=3600, description="systemd units")
    connect_timeout: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _has_credentials(self) -> SshTargetSpec:
        if self.key is None and self.password is None:
            raise ValueError("an ssh target needs 'key' or 'password' (a secret reference)")
        return self


class HostSpec(_Strict):
    labels: dict[str, str] = Field(default_factory=dict)
    ssh: SshTargetSpec | None = Field(
        default=None, description="no agent: managed over SSH (kind ssh-target)"
    )


class GroupSpec(_Strict):
    """Hosts whose id matches any of `hosts` (globs) and that carry every label in `labels`."""

    hosts: list[str] = Field(default_factory=lambda: ["*"])
    labels: dict[str, str] = Field(default_factory=dict)


def _action_kind_glob(value: str) -> str:
    """A glob that can match an action kind: start, stop, restart, or command:<name>."""
    if value.startswith(COMMAND_PREFIX):
        if value == COMMAND_PREFIX:
            raise ValueError("'command:' needs a command name or glob, e.g. command:*")
        return value
    # any command's label, to let `*` or `c*` through
    labels = [k.value for k in ActionKind if k.value != "command"] + [f"{COMMAND_PREFIX}x"]
    if not any(fnmatchcase(label, value) for label in labels):
        plain = ", ".join(label for label in labels[:-1])
        raise ValueError(
            f"unknown action kind {value!r}: expected {plain} or command:<name> (globs allowed)"
        )
    return value


# Names, or globs over names: characters a name may have, and *, ?, [...].
PolicyGlob = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9_*?\[\]!-]{1,100}$"), AfterValidator(_glob)
]
KindGlob = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_glob),
    AfterValidator(_action_kind_glob),
]
GroupOfPeople = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ApprovalRule(_Strict):
    """Actions that need four eyes: approved by `required` people other than the requester
    before anything is sent. Every rule that matches an action applies; all must be satisfied.

        approvals:
          - name: production changes     # shown to approvers (default: file:line)
            applications: ["*"]          # globs over application names
            environments: [production]   # globs over the application's environment
            kinds: [restart, stop, "command:*"]
            required: 2                  # distinct approvers
            from_groups: [ops-leads]     # approvers must be in one; empty: any approver
            open_for: 14400              # seconds; then the request expires unrun
    """

    name: str | None = Field(default=None, min_length=1, max_length=100)
    applications: list[PolicyGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[PolicyGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    kinds: list[KindGlob] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="start, stop, restart, command:<name>; globs",
    )
    required: int = Field(default=1, ge=1, le=MAX_REQUIRED, description="distinct approvers")
    from_groups: list[GroupOfPeople] = Field(
        default_factory=list, description="approvers must be in one of these; empty: anyone"
    )
    preapproved: list[Window] = Field(
        default_factory=list,
        description="windows in which the actions of schedules need no approval under it",
    )
    open_for: float = Field(
        default=DEFAULT_OPEN_FOR_S,
        ge=1,
        le=MAX_OPEN_FOR_S,
        description="seconds a request stays open; then it expires and the action never runs",
    )

    def policy(self, where: str) -> ApprovalPolicy:
        """The policy as it applies, named after the rule or after `where` it is written."""
        return ApprovalPolicy(
            name=self.name or where,
            applications=tuple(self.applications),
            environments=tuple(self.environments),
            kinds=tuple(self.kinds),
            required=self.required,
            from_groups=tuple(self.from_groups),
            open_for_s=self.open_for,
            preapproved=tuple(self.preapproved),
        )


GroupName = Annotated[str, StringConstraints(pattern=GROUP_NAME_PATTERN)]
NameGlob = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_glob)]


class AccessBinding(_Strict):
    """What the members of a group may do: a role, on the applications and environments whose
    names match these globs (every one when left out).

        access:
          team-shop:
            - {role: operator, applications: [shop], environments: [staging]}
            - {role: viewer}
    """

    role: Role
    applications: list[NameGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[NameGlob] = Field(default_factory=lambda: ["*"], min_length=1)

    def grant(self) -> Grant:
        return Grant(self.role, tuple(self.applications), tuple(self.environments))


class WebhookChannel(_Strict):
    """An HTTP POST of a JSON body: {"alerts": [{"rule", "key", "state", "summary", "since"}]}."""

    url: str = Field(pattern=r"^https?://[^\s]+$")
    headers: dict[str, EnvValue] = Field(
        default_factory=dict, description="values, or {secret: …} (an Authorization header)"
    )
    timeout: float = Field(default=10.0, gt=0, le=120)


class SmtpChannel(_Strict):
    """A mail per round of news, to every address of `to`."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    username: str | None = None
    password: SecretOnly | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)


class ChannelSpec(_Strict):
    """Where alerts go: one of `webhook` or `smtp`."""

    webhook: WebhookChannel | None = None
    smtp: SmtpChannel | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ChannelSpec:
        if (self.webhook is None) == (self.smtp is None):
            raise ValueError("a channel is one of 'webhook' or 'smtp'")
        return self


AlertCondition = Literal[
    "host_lost",
    "service_failed",
    "service_drifted",
    "action_failure_rate",
    "stream_backlog",
    "stall",
]
# condition → the fields it takes beyond the common ones, and those it needs
_CONDITION_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "host_lost": ({"hosts"}, set()),
    "service_failed": ({"hosts", "applications"}, set()),
    "service_drifted": ({"hosts", "applications"}, set()),
    "action_failure_rate": ({"applications", "above", "window", "min_actions"}, {"above"}),
    "stream_backlog": ({"stream", "above"}, {"stream", "above"}),
    "stall": ({"window"}, set()),
}


class AlertRule(_Strict):
    """A condition that, once it has held `after` seconds, is sent to `channels`; again every
    `renotify` seconds while it holds (0: never again), and once more when it clears.

    host_lost: a host not online (offline or lost). service_failed / service_drifted: a
    service failed, or not where its target says. action_failure_rate: more than `above` (0–1)
    of the host results of the last `window` seconds failed (at least `min_actions` results).
    stream_backlog: a consumer of `stream` with more than `above` messages waiting. stall: a
    consumer of the server's found stalled in the last `window` seconds."""

    when: AlertCondition
    channels: list[Name] = Field(min_length=1)
    after: float = Field(default=0.0, ge=0, le=7 * 24 * 3600, description="seconds")
    renotify: float = Field(default=4 * 3600.0, ge=0, le=30 * 24 * 3600, description="seconds")
    hosts: list[str] = Field(default_factory=list, description="host id globs; default: all")
    applications: list[Name] = Field(default_factory=list, description="default: all")
    above: float | None = Field(default=None, ge=0)
    window: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600, description="seconds")
    min_actions: int = Field(default=5, ge=1)
    stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")

    @model_validator(mode="after")
    def _fits_its_condition(self) -> AlertRule:
        allowed, required = _CONDITION_FIELDS[self.when]
        given = {name for name in self.model_fields_set if name in _CONDITION_OPTIONS}
        if missing := sorted(required - given):
            raise ValueError(f"{self.when} needs {_names(missing)}")
        if stray := sorted(given - allowed):
            raise ValueError(f"{_names(stray)} not used by {self.when}")
        if self.when == "action_failure_rate" and (self.above or 0) > 1:
            raise ValueError("action_failure_rate: 'above' is a share, from 0 to 1")
        return self


_CONDITION_OPTIONS = {"hosts", "applications", "above", "window", "min_actions", "stream"}


class ScheduleSpec(_Strict):
    """An action requested at the times `cron` says, in `timezone` (model/schedule.py).

    A run found due more than `late` seconds after its time — drover was not running then —
    is recorded missed and not run: only the latest one due may still run, if it is not late."""

    cron: Cron
    timezone: TimeZone = "UTC"
    kind: ActionKind
    application: Name
    service: Name | None = None
    hosts: list[HostId] = Field(default_factory=list, description="default: all it runs on")
    groups: list[Name] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    command: Name | None = Field(default=None, description="kind command: which")
    params: dict[str, str | int | bool] = Field(default_factory=dict)
    deadline: float = Field(default=600.0, gt=0, le=24 * 3600, description="seconds")
    late: float = Field(default=300.0, gt=0, le=24 * 3600, description="seconds")

    @model_validator(mode="after")
    def _command_fields(self) -> ScheduleSpec:
        if self.kind is ActionKind.COMMAND and self.command is None:
            raise ValueError("kind command needs 'command': which of the application's commands")
        if self.kind is not ActionKind.COMMAND and (self.command or self.params):
            raise ValueError("'command' and 'params' go with kind command only")
        return self


class ConfigFile(_Strict):
    """What one YAML file may contain."""

    applications: dict[Name, Application] = Field(default_factory=dict)
    hosts: dict[HostId, HostSpec] = Field(default_factory=dict)
    groups: dict[Name, GroupSpec] = Field(default_factory=dict)
    approvals: list[ApprovalRule] = Field(default_factory=list)
    access: dict[GroupName, list[AccessBinding]] = Field(default_factory=dict)
    alerts: dict[Name, AlertRule] = Field(default_factory=dict)
    channels: dict[Name, ChannelSpec] = Field(default_factory=dict)
    schedules: dict[Name, ScheduleSpec] = Field(default_factory=dict)


class FleetConfig(_Strict):
    """All files merged: the desired state of the fleet at one revision."""

    revision: str
    applications: dict[Name, Application] = Field(default_factory=dict)
    hosts: dict[HostId, HostSpec] = Field(default_factory=dict)
    groups: dict[Name, GroupSpec] = Field(default_factory=dict)
    # Every approval rule of every file, in file order (drover.model.approval).
    approvals: list[ApprovalPolicy] = Field(default_factory=list)
    # Group → what its members may do (drover.model.access), from every file's `access:`.
    access: dict[GroupName, list[AccessBinding]] = Field(default_factory=dict)
    alerts: dict[Name, AlertRule] = Field(default_factory=dict)
    channels: dict[Name, ChannelSpec] = Field(default_factory=dict)
    schedules: dict[Name, ScheduleSpec] = Field(default_factory=dict)
    # Where each discovery rule is written, (file, line, column) by `rule_key`: a rule that
    # turns out to match nothing is reported at its place, long after loading.
    rule_locations: dict[str, tuple[str, int, int]] = Field(default_factory=dict)


def rule_key(application: str, index: int) -> str:
    return f"applications.{application}.discover[{index}]"
