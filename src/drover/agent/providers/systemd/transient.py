"""Supervised processes on a host with systemd: each one a transient service unit.

Each `process` service runs as `drover-<application>-<service>.service`, created through the
manager's `StartTransientUnit` (the call `systemd-run` makes). The unit has its own cgroup, so
restarting or upgrading the agent leaves the applications running. A new agent adopts the units
it finds running with the command, environment and directory it would have given them, and
recreates the others.

The units are followed exactly as `systemd` services are (SystemdProvider): PropertiesChanged
signals, and full reads only when taking a unit on, after a job, and after a reconnect. What
differs:

- drover owns these units. A service no longer desired has its unit stopped. `close()` still
  leaves every unit running: that is the point.
- `CollectMode=inactive-or-failed`: a unit that stops or fails is garbage-collected at once, so it
  can be created anew with the current command. Gone, it is `stopped`; or `failed`, with the
  result and exit code that systemd signalled as it ended.
- no `Restart=`: a crash shows as `failed`, and the reconciler decides on the restart.
- a unit of that name that drover did not create (one with a unit file) is never touched.
- secrets (ops/secrets.py) are not given as `Environment=`, which any local user can read
  over D-Bus (`systemctl show`). The agent resolves them into an environment file of its own
  (0600, in `<data dir>/secrets`) named in `EnvironmentFiles=`, and removes the file once the
  start job is done: systemd has read it by then. A restart therefore goes through drover
  (which writes the file again), not through `systemctl restart`. The file's name carries a
  digest of the references, so a unit started with other references is recreated; a new value
  behind the same reference takes effect at the service's next restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dbus_fast import Variant

from drover.agent.providers.base import NOT_A_SERVICE_OPERATION, OperationFailed
from drover.agent.providers.systemd.errors import SystemdError
from drover.agent.providers.systemd.manager import NO_SUCH_UNIT, UNIT_EXISTS
from drover.agent.providers.systemd.mapping import (
    SERVICE_INTERFACE,
    Mapped,
    UnitSnapshot,
    map_status,
)
from drover.agent.providers.systemd.provider import SystemdProvider, _Unit
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.names import is_name
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import Clock
from drover.ops.secrets import SecretUnavailable, installed

log = logging.getLogger(__name__)

_UP = ("active", "activating", "reloading")
_ENDED = (ServiceStatus.STOPPED, ServiceStatus.FAILED)
# ExecMainCode: how the main process ended (siginfo's si_code)
_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3


_PREFIX, _SUFFIX = "drover-", ".service"


def transient_unit_name(spec: DesiredService) -> str:
    return f"{_PREFIX}{spec.application}-{spec.service}{_SUFFIX}"


def is_transient_unit_name(name: str) -> bool:
    """Whether `name` is one transient_unit_name gives some service: `drover-<a>-<s>.service`
    with `a` and `s` valid names (so not the agent's own `drover-agent.service`)."""
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return False
    middle = name[len(_PREFIX) : -len(_SUFFIX)]
    return any(
        is_name(middle[:at]) and is_name(middle[at + 1 :])
        for at, char in enumerate(middle)
        if char == "-"
    )


def secrets_file(spec: DesiredService, directory: Path) -> Path | None:
    """Where the service's resolved secrets are written for its start; None: it has none."""
    if not spec.secrets:
        return None
    references = json.dumps(spec.secrets, sort_keys=True).encode()
    digest = hashlib.sha256(references).hexdigest()[:16]
    return directory / f"{transient_unit_name(spec)}.{digest}.env"


def environment_file_text(values: Mapping[str, str]) -> str:
    """`NAME="value"` lines as systemd's EnvironmentFile= parses them: inside double quotes a
    backslash keeps `"`, `\\`, `$` and `` ` `` literal, and any other character (a newline too)
    stands for itself."""
    lines = []
    for name, value in sorted(values.items()):
        quoted = "".join(f"\\{char}" if char in '"\\$`' else char for char in value)
        lines.append(f'{name}="{quoted}"\n')
    return "".join(lines)


def transient_properties(
    spec: DesiredService, secrets: Path | None = None
) -> list[tuple[str, Variant]]:
    """What StartTransientUnit is given for a service; `secrets`: its secrets' file."""
    if not spec.command:
        raise SystemdError(transient_unit_name(spec), "drover.NoCommand", "no command to run")
    properties = [
        ("Description", Variant("s", f"drover: {spec.application}/{spec.service}")),
        # exec: the start job fails when the command cannot be executed
        ("Type", Variant("s", "exec")),
        ("ExecStart", Variant("a(sasb)", [(spec.command[0], list(spec.command), False)])),
        ("Environment", Variant("as", [f"{k}={v}" for k, v in spec.env.items()])),
        ("KillMode", Variant("s", "control-group")),
        ("TimeoutStopUSec", Variant("t", max(1, round(spec.stop_timeout * 1_000_000)))),
        ("CollectMode", Variant("s", "inactive-or-failed")),
    ]
    if spec.cwd:
        properties.append(("WorkingDirectory", Variant("s", spec.cwd)))
    if secrets is not None:
        properties.append(("EnvironmentFiles", Variant("a(sb)", [(str(secrets), False)])))
    return properties


@dataclasses.dataclass(frozen=True)
class Definition:
    """What a unit runs: a running unit whose definition differs from the desired is recreated.
    (A changed stop timeout alone takes effect at the next start.)"""

    exec_start: tuple[tuple[str, tuple[str, ...]], ...]
    environment: tuple[str, ...]
    working_directory: str
    environment_files: tuple[str, ...] = ()

    @classmethod
    def desired(cls, spec: DesiredService, secrets: Path | None = None) -> Definition:
        return cls(
            ((spec.command[0], tuple(spec.command)),) if spec.command else (),
            tuple(sorted(f"{k}={v}" for k, v in spec.env.items())),
            spec.cwd or "",
            (str(secrets),) if secrets is not None else (),
        )

    @classmethod
    def of_unit(cls, service: Mapping[str, Any]) -> Definition:
        """From the plain values of GetAll on the unit's Service interface."""
        return cls(
            tuple((str(e[0]), tuple(e[1])) for e in service.get("ExecStart", [])),
            tuple(sorted(service.get("Environment", []))),
            str(service.get("WorkingDirectory", "")),
            tuple(str(e[0]) for e in service.get("EnvironmentFiles", [])),
        )


class TransientProcessProvider(SystemdProvider):
    """The `process` provider when systemd is there: the Provider contract over transient
    units, with SystemdProvider's connection, signal and state handling."""

    name = "process"

    def __init__(
        self,
        host: str,
        clock: Clock,
        tg: asyncio.TaskGroup,
        bus_address: str | None = None,
        secrets_dir: Path = Path("/var/lib/drover/secrets"),
    ) -> None:
        super().__init__(host, clock, tg, bus_address)
        self._secrets_dir = secrets_dir
        self._exits: dict[str, tuple[int, int]] = {}  # unit → (ExecMainCode, ExecMainStatus)
        self._leaving: set[str] = set()  # units of services no longer desired, not stopped yet
        self._clashes: dict[tuple[str, str], ServiceState] = {}

    def states(self) -> list[ServiceState]:
        return [*super().states(), *self._clashes.values()]

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted, clashes = self._claim([d for d in desired if d.provider == self.name])
        async with self._apply_lock:
            for key in [k for k in self._units if k not in wanted]:
                unit = self._units.pop(key)
                self._leaving.add(unit.name)
                await self._forget(unit)
            for key, spec in wanted.items():
                if key in self._units:
                    self._units[key].spec = spec
                else:
                    self._units[key] = self._new_unit(spec)
                self._leaving.discard(self._units[key].name)
            self._announce_clashes(clashes)
            if not await self._ensure_connected():
                return
            for name in sorted(self._leaving):
                await self._retire(name)
            for unit in list(self._units.values()):
                async with unit.lock:
                    await self._bring_to_target(unit)

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        if (clash := self._clashes.get((application, service))) is not None:
            raise OperationFailed(application, service, clash.message)
        return await super().act(application, service, kind)

    # -- what differs from systemd units ------------------------------------------------------

    def _new_unit(self, spec: DesiredService) -> _Unit:
        unit = super()._new_unit(spec)
        unit.name = transient_unit_name(spec)
        return unit

    async def _start_or_stop(self, unit: _Unit) -> str | None:
        """Adopt a running unit that runs what is desired; recreate one that runs something
        else; start or stop the rest. The job result, or None when nothing was done."""
        _check_ours(unit)
        up = unit.snapshot is not None and unit.snapshot.active_state in _UP
        if unit.spec.target is TargetStatus.RUNNING:
            if up and await self._runs_as_desired(unit):
                return None
            if up:
                log.info("%s runs another command than desired: recreating it", unit.name)
                if (result := await self._stop(unit)) != "done":
                    return result
            result = await self._start(unit)
        elif up:
            result = await self._stop(unit)
        else:
            return None
        await self._refresh(unit)
        return result

    async def _job(self, kind: ActionKind, name: str) -> str:
        found = [u for u in self._units.values() if u.name == name]
        if not found:  # removed from the desired state while the action waited for it
            raise SystemdError(name, "drover.NoLongerDesired", "no longer desired on this host")
        [unit] = found
        _check_ours(unit)
        match kind:
            case ActionKind.START:
                return await self._start(unit)
            case ActionKind.STOP:
                return await self._stop(unit)
            case ActionKind.RESTART:
                # stop, then create afresh: the stopped unit is gone (CollectMode)
                result = await self._stop(unit)
                return await self._start(unit) if result == "done" else result
            case ActionKind.COMMAND | ActionKind.PING:
                raise SystemdError(name, "drover.NotAJob", NOT_A_SERVICE_OPERATION)

    async def _start(self, unit: _Unit) -> str:
        async with self._secrets_written(unit) as secrets:
            return await self._start_with(unit, secrets)

    @contextlib.asynccontextmanager
    async def _secrets_written(self, unit: _Unit) -> AsyncIterator[Path | None]:
        """The unit's secrets resolved into its environment file for the time of its start."""
        path = secrets_file(unit.spec, self._secrets_dir)
        if path is None:
            yield None
            return
        try:
            values = await installed().environment(unit.spec.secrets)
        except SecretUnavailable as err:
            self._set(unit, Mapped(ServiceStatus.FAILED, f"cannot start: {err}"))
            raise SystemdError(unit.name, "drover.SecretUnavailable", str(err)) from None
        try:
            await asyncio.to_thread(_write_private, path, environment_file_text(values))
        except OSError as err:
            why = f"cannot write {path}: {err.strerror or err}"
            raise SystemdError(unit.name, "drover.SecretsFile", why) from None
        del values  # held no longer than the start takes
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def _start_with(self, unit: _Unit, secrets: Path | None) -> str:
        if _exists(unit.snapshot):
            try:
                return await self.manager.start_unit(unit.name)
            except SystemdError as err:
                if err.name != NO_SUCH_UNIT:
                    raise  # otherwise collected since it was read: create it
        try:
            return await self.manager.start_transient_unit(
                unit.name, transient_properties(unit.spec, secrets)
            )
        except SystemdError as err:
            if err.name != UNIT_EXISTS:
                raise
        return await self.manager.start_unit(unit.name)  # ended, but not yet collected

    async def _stop(self, unit: _Unit) -> str:
        try:
            result = await self.manager.stop_unit(unit.name)
        except SystemdError as err:
            if err.name != NO_SUCH_UNIT:
                raise
            result = "done"  # gone already
        if result == "done":
            unit.snapshot = None  # stopped on purpose: how it last ended is no longer news
        return result

    async def _retire(self, name: str) -> None:
        """Stop the unit of a service no longer desired; on failure, try at the next apply."""
        try:
            snapshot = await self.manager.unit_properties(name, await self.manager.load_unit(name))
            if _foreign(snapshot):
                log.warning("%s is no longer desired, but not drover's: left alone", name)
            elif snapshot.load_state != "not-found":
                if (result := await self.manager.stop_unit(name)) != "done":
                    log.warning("stopping %s (no longer desired) ended '%s'", name, result)
                    return
                log.info("stopped %s: no longer desired", name)
        except SystemdError as err:
            if err.name != NO_SUCH_UNIT:
                log.warning("could not stop %s (no longer desired): %s", name, err)
                return
        self._leaving.discard(name)
        self._exits.pop(name, None)

    async def _runs_as_desired(self, unit: _Unit) -> bool:
        assert unit.path is not None
        service = await self.manager.properties(unit.name, unit.path, SERVICE_INTERFACE)
        secrets = secrets_file(unit.spec, self._secrets_dir)
        return Definition.of_unit(service) == Definition.desired(unit.spec, secrets)

    # -- states -------------------------------------------------------------------------------

    def _on_properties(self, path: str, interface: str, changed: Mapping[str, Any]) -> None:
        if interface == SERVICE_INTERFACE and {"ExecMainCode", "ExecMainStatus"} <= set(changed):
            for unit in self._units.values():
                if unit.path == path:
                    self._exits[unit.name] = (changed["ExecMainCode"], changed["ExecMainStatus"])
        super()._on_properties(path, interface, changed)

    def _update(self, unit: _Unit, snapshot: UnitSnapshot) -> None:
        previous = unit.snapshot
        if _read_absent(snapshot) and previous is not None and previous.active_state == "failed":
            # collected after it failed: that failure is still what there is to tell
            snapshot = dataclasses.replace(previous, load_state="not-found", main_pid=0)
        unit.snapshot = snapshot
        self._set(unit, _describe(snapshot), snapshot)

    def _set(self, unit: _Unit, mapped: Mapped, snapshot: UnitSnapshot | None = None) -> None:
        """SystemdProvider's, plus the exit code of a unit that ended."""
        before = unit.state
        exit_code = self._exit_code(unit.name) if mapped.status in _ENDED else None
        unit.state = noted = before.model_copy(update={"exit_code": exit_code})
        super()._set(unit, mapped, snapshot)
        if unit.state is noted and noted != before:  # only the exit code changed
            self._listeners(noted)

    def _exit_code(self, name: str) -> int | None:
        """As subprocess has it: the exit status, or minus the signal that ended the process."""
        code, status = self._exits.get(name, (0, 0))
        if code == _CLD_EXITED:
            return status
        if code in (_CLD_KILLED, _CLD_DUMPED):
            return -status
        return None

    # -- services whose unit names clash ------------------------------------------------------

    def _claim(
        self, desired: Sequence[DesiredService]
    ) -> tuple[dict[tuple[str, str], DesiredService], dict[tuple[str, str], str]]:
        """The services to run, and why others cannot: `a-b/c` and `a/b-c` would share a unit."""
        wanted: dict[tuple[str, str], DesiredService] = {}
        clashes: dict[tuple[str, str], str] = {}
        owners: dict[str, DesiredService] = {}
        for spec in desired:
            name = transient_unit_name(spec)
            owner = owners.setdefault(name, spec)
            if owner is spec:
                wanted[(spec.application, spec.service)] = spec
            else:
                clashes[(spec.application, spec.service)] = (
                    f"unit name {name} is already that of {owner.application}/{owner.service}"
                )
        return wanted, clashes

    def _announce_clashes(self, clashes: Mapping[tuple[str, str], str]) -> None:
        known, self._clashes = self._clashes, {}
        for (application, service), message in clashes.items():
            state = known.get((application, service))
            if state is None or state.message != message:
                state = ServiceState(
                    host=self._host,
                    application=application,
                    service=service,
                    provider=self.name,
                    status=ServiceStatus.UNKNOWN,
                    since=self._clock.now(),
                    message=message,
                )
                log.warning("%s/%s: %s", application, service, message)
                self._listeners(state)
            self._clashes[(application, service)] = state


def _exists(snapshot: UnitSnapshot | None) -> bool:
    """Whether the unit is there, as far as is known (signals do not carry LoadState)."""
    if snapshot is None:
        return False
    return snapshot.load_state != "not-found" or snapshot.active_state not in ("inactive", "failed")


def _read_absent(snapshot: UnitSnapshot) -> bool:
    """A full read of a unit that is not there (never was, or collected)."""
    return snapshot.load_state == "not-found" and snapshot.state_change_usec == 0


def _foreign(snapshot: UnitSnapshot | None) -> bool:
    """A unit of that name that drover did not create: it has a unit file."""
    return (
        snapshot is not None
        and snapshot.load_state != "not-found"
        and snapshot.unit_file_state != "transient"
    )


def _check_ours(unit: _Unit) -> None:
    if _foreign(unit.snapshot):
        raise SystemdError(unit.name, "drover.NotTransient", _not_ours(unit.name))


def _not_ours(name: str) -> str:
    return f"{name} exists and is not a transient unit drover created: left alone"


def _describe(snapshot: UnitSnapshot) -> Mapped:
    if _foreign(snapshot):
        return Mapped(ServiceStatus.UNKNOWN, _not_ours(snapshot.name))
    if snapshot.load_state == "not-found":  # not there: stopped, or how it ended
        return map_status(snapshot.active_state, snapshot.sub_state, result=snapshot.result)
    return snapshot.describe()


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by the agent's user alone from its first byte."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
