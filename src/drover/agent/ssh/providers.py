"""A target's services, checked and acted on over SSH: the `script` and `systemd` providers of a
host without an agent. (`process` services need a supervisor on the host: a target has none,
and reports them `unknown`, as any host lacking a provider does.)

- script services are the local ScriptProvider's, their status, start and stop runs made on the
  target (remote.py), with their environment and secrets;
- systemd units are read with one `systemctl show` of all of them every `check_interval`
  seconds and after each action, and mapped to a status as the local systemd provider maps
  them; start, stop and restart are `systemctl start|stop|restart UNIT` (with `sudo -n` when
  the target says so). Unlike the local provider there are no change signals: a change shows
  at the next check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from drover.agent.errors import UnknownService
from drover.agent.providers.base import (
    NOT_A_SERVICE_OPERATION,
    Listeners,
    OperationFailed,
    StateListener,
)
from drover.agent.providers.script import OUTPUT_LIMIT, RunScript, ScriptRun
from drover.agent.providers.systemd.mapping import Mapped, map_status
from drover.agent.ssh import remote
from drover.agent.ssh.connections import SshPool, SshUnavailable
from drover.bus.messages import DesiredService, ServiceState, SshTarget, tail
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus
from drover.ops.clock import Clock
from drover.ops.secrets import Redactor, SecretUnavailable, installed

log = logging.getLogger(__name__)

SYSTEMCTL_TIMEOUT = 60.0
SHOWN = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "Result", "NRestarts")
_VERBS = {ActionKind.START: "start", ActionKind.STOP: "stop", ActionKind.RESTART: "restart"}
_DONE = {ActionKind.START: "started", ActionKind.STOP: "stopped", ActionKind.RESTART: "restarted"}


@dataclass(frozen=True)
class Ran:
    """How one run on the target ended; `error` when it could not be run at all."""

    exit_code: int | None = None
    timed_out: bool = False
    output: str = ""
    error: str = ""


async def run_on(
    pool: SshPool,
    target: SshTarget,
    argv: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
) -> Ran:
    """Run `argv` on the target (through sudo if it says so), its secrets resolved here and
    masked in the output kept (the last OUTPUT_LIMIT bytes)."""
    try:
        secret = await installed().environment(secrets or {})
    except SecretUnavailable as err:
        return Ran(error=str(err))
    redactor = Redactor(secret.values())
    kept = bytearray()

    def keep(data: bytes) -> None:
        kept.extend(data)
        del kept[:-OUTPUT_LIMIT]

    try:
        async with pool.session(target) as connection:
            finished = await remote.run(
                connection,
                argv,
                env={**(env or {}), **secret},
                sudo=target.sudo,
                timeout=timeout,
                sink=keep,
            )
    except SshUnavailable as err:
        return Ran(error=str(err))
    except (OSError, asyncssh.Error) as err:
        return Ran(error=f"the SSH session to {target.host} failed: {err}")
    finally:
        del secret
    text = redactor.text(bytes(kept).decode(errors="replace"))
    return Ran(finished.exit_code, finished.timed_out, text)


def script_runner(pool: SshPool, target: SshTarget) -> RunScript:
    """The local script provider's runs, made on the target."""

    async def run(what: str, argv: list[str], spec: DesiredService) -> ScriptRun:
        if not argv:
            return ScriptRun(what, spec.timeout, error="no command given")
        ran = await run_on(pool, target, argv, spec.timeout, spec.env, spec.secrets)
        return ScriptRun(
            what,
            spec.timeout,
            exit_code=None if ran.timed_out else ran.exit_code,
            timed_out=ran.timed_out,
            error=ran.error,
            output=ran.output,
        )

    return run


@dataclass
class _Unit:
    spec: DesiredService
    state: ServiceState

    @property
    def name(self) -> str:
        assert self.spec.unit is not None
        return self.spec.unit


class SshSystemdProvider:
    name = "systemd"

    def __init__(
        self, host: str, target: SshTarget, pool: SshPool, clock: Clock, tg: asyncio.TaskGroup
    ) -> None:
        self._host = host
        self._target = target
        self._pool = pool
        self._clock = clock
        self._tg = tg
        self._units: dict[tuple[str, str], _Unit] = {}
        self._listeners = Listeners()
        self._checker: asyncio.Task[None] | None = None
        self._failing = False

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)

    def states(self) -> list[ServiceState]:
        return [unit.state for unit in self._units.values()]

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted = {
            (d.application, d.service): d for d in desired if d.provider == self.name and d.unit
        }
        for key in [k for k in self._units if k not in wanted]:
            del self._units[key]  # forgotten, not stopped: drover did not start these units
        for key, spec in wanted.items():
            if key in self._units:
                self._units[key].spec = spec
            else:
                self._units[key] = _Unit(spec, self._unchecked(spec))
        await self.refresh()
        if self._checker is None:
            self._checker = self._tg.create_task(self._check_forever(), name="ssh-systemd")

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        unit = self._units.get((application, service))
        if unit is None:
            raise UnknownService(application, service)
        verb = _VERBS.get(kind)
        if verb is None:
            raise OperationFailed(application, service, NOT_A_SERVICE_OPERATION)
        ran = await run_on(
            self._pool, self._target, ["systemctl", verb, "--", unit.name], SYSTEMCTL_TIMEOUT
        )
        await self.refresh()
        if ran.error:
            raise OperationFailed(application, service, ran.error)
        if ran.timed_out or ran.exit_code != 0:
            how = "timed out" if ran.timed_out else f"exited {ran.exit_code}"
            said = tail(ran.output.strip(), 300)
            reason = f"systemctl {verb} {how}" + (f": {said}" if said else "")
            raise OperationFailed(application, service, reason)
        return f"{_DONE[kind]} (status: {unit.state.status})"

    async def refresh(self) -> None:
        """Read every unit's state with one `systemctl show`."""
        units = list(self._units.values())
        if not units:
            return
        argv = [
            "systemctl",
            "show",
            f"--property={','.join(SHOWN)}",
            "--",
            *(u.name for u in units),
        ]
        ran = await run_on(self._pool, self._target, argv, SYSTEMCTL_TIMEOUT)
        if ran.error or ran.exit_code != 0:
            why = ran.error or f"systemctl show exited {ran.exit_code}: {tail(ran.output, 200)}"
            if not self._failing:
                log.warning("%s: cannot read its systemd units: %s", self._host, why)
                self._failing = True
            for unit in units:
                self._set(unit, Mapped(ServiceStatus.UNKNOWN, why))
            return
        if self._failing:
            log.info("%s: its systemd units can be read again", self._host)
            self._failing = False
        shown = {block.get("Id", ""): block for block in parse_show(ran.output)}
        for unit in units:
            self._set(unit, mapped(shown.get(unit.name)))

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.wait({self._checker})

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._target.check_interval)
            await self.refresh()

    def _unchecked(self, spec: DesiredService) -> ServiceState:
        return ServiceState(
            host=self._host,
            application=spec.application,
            service=spec.service,
            provider=self.name,
            status=ServiceStatus.UNKNOWN,
            since=self._clock.now(),
            message="not checked yet",
        )

    def _set(self, unit: _Unit, found: Mapped) -> None:
        status, message = found
        if (status, message) == (unit.state.status, unit.state.message):
            return
        unit.state = unit.state.model_copy(
            update={"status": status, "message": message, "since": self._clock.now()}
        )
        self._listeners(unit.state)


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show` of several units: a block of Key=Value lines each, blank-separated."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def mapped(block: dict[str, str] | None) -> Mapped:
    """A unit's status from what `systemctl show` said of it."""
    if block is None:
        return Mapped(ServiceStatus.UNKNOWN, "systemctl show said nothing of it")
    if block.get("LoadState") == "not-found":
        return Mapped(ServiceStatus.UNKNOWN, "no such unit on this host")
    restarts = block.get("NRestarts", "")
    return map_status(
        block.get("ActiveState", ""),
        block.get("SubState", ""),
        block.get("UnitFileState") or None,
        block.get("Result") or None,
        int(restarts) if restarts.isdigit() else 0,
    )
