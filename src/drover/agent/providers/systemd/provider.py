"""Services that are systemd units: drover asks systemd to start and stop them, and reports what
systemd says about them.

The state of each unit comes from systemd's `PropertiesChanged` signals (merged into the last
snapshot), read in full only when drover starts managing a unit, after a job of its own, and after
a reconnect. drover does not own these units: one it stops managing, or an agent that shuts down,
leaves them exactly as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from drover.agent.errors import UnknownService
from drover.agent.providers.base import (
    NOT_A_SERVICE_OPERATION,
    Listeners,
    OperationFailed,
    StateListener,
)
from drover.agent.providers.systemd.errors import SystemdError
from drover.agent.providers.systemd.manager import SystemdManager
from drover.agent.providers.systemd.mapping import Mapped, UnitSnapshot
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import Policy, ServiceStatus, TargetStatus
from drover.ops.clock import Clock

log = logging.getLogger(__name__)

_UP = ("active", "activating", "reloading")  # ActiveStates in which a unit need not be started
_HAS_PID = (ServiceStatus.RUNNING, ServiceStatus.STARTING, ServiceStatus.STOPPING)
_REREADS = 3  # full reads of a unit while signals keep arriving for it, before taking the last


@dataclasses.dataclass(eq=False)
class _Unit:
    """One service drover manages, and what it knows of its unit."""

    spec: DesiredService
    name: str
    state: ServiceState
    path: str | None = None  # set while watched on the current connection
    snapshot: UnitSnapshot | None = None
    signals: int = 0  # PropertiesChanged seen: tells a full read that it may be stale
    retargeted: bool = False  # the target changed since the unit was last brought to it
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


def unit_name(spec: DesiredService) -> str:
    return spec.unit or f"{spec.service}.service"


class SystemdProvider:
    name = "systemd"

    def __init__(
        self, host: str, clock: Clock, tg: asyncio.TaskGroup, bus_address: str | None = None
    ) -> None:
        self.manager = SystemdManager(bus_address)
        self._host = host
        self._clock = clock
        self._tg = tg
        self._units: dict[tuple[str, str], _Unit] = {}
        self._watched: set[str] = set()
        self._listeners = Listeners()
        self._apply_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._generation = 0
        self._closed = False
        self._unreachable = False  # logged once when systemd goes away, once when it is back

    async def connect(self) -> None:
        """Connect to systemd; raises SystemdError when it is not reachable."""
        self._generation += 1  # first: the watcher of the old connection must stand down
        await self.manager.connect()
        self._closed = False
        self._watched.clear()
        for unit in self._units.values():
            unit.path = None  # watches belonged to the old connection
        self._tg.create_task(self._watch_connection(self._generation))

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)

    def states(self) -> list[ServiceState]:
        return [unit.state for unit in self._units.values()]

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted = {(d.application, d.service): d for d in desired if d.provider == self.name}
        async with self._apply_lock:
            for key in [k for k, u in self._units.items() if k not in wanted or _moved(u, wanted)]:
                await self._forget(self._units.pop(key))
            for key, spec in wanted.items():
                if key in self._units:
                    unit = self._units[key]
                    unit.retargeted |= unit.spec.target is not spec.target
                    unit.spec = spec
                else:
                    self._units[key] = self._new_unit(spec)
            if not await self._ensure_connected():
                return
            for unit in list(self._units.values()):
                async with unit.lock:
                    await self._bring_to_target(unit)

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        unit = self._units.get((application, service))
        if unit is None:
            raise UnknownService(application, service)
        async with unit.lock:
            if not await self._ensure_connected():
                raise OperationFailed(application, service, unit.state.message)
            try:
                if unit.path is None:
                    await self._track(unit)
                before = unit.state.pid
                result = await self._job(kind, unit.name)
                await self._refresh(unit)
            except SystemdError as err:
                raise OperationFailed(application, service, str(err)) from err
        if result != "done":
            why = f"{kind} job for {unit.name} ended '{result}'"
            if unit.state.message:
                why += f" ({unit.state.status}, {unit.state.message})"
            raise OperationFailed(application, service, why)
        return _done(kind, unit.name, before, unit.state.pid)

    async def close(self) -> None:
        """Stop listening and disconnect; every unit stays as it is."""
        self._closed = True
        await self.manager.close()
        self._watched.clear()

    # -- keeping track of units ---------------------------------------------------------------

    def _new_unit(self, spec: DesiredService) -> _Unit:
        state = ServiceState(
            host=self._host,
            application=spec.application,
            service=spec.service,
            provider=self.name,
            status=ServiceStatus.UNKNOWN,
            since=self._clock.now(),
            message="not read yet",
        )
        return _Unit(spec, unit_name(spec), state)

    async def _track(self, unit: _Unit) -> None:
        """Watch the unit's signals, then read it in full (in that order: no change is lost)."""
        path = await self.manager.load_unit(unit.name)
        if path not in self._watched:
            await self.manager.watch(path, partial(self._on_properties, path))
            self._watched.add(path)
        unit.path = path
        await self._refresh(unit)

    async def _refresh(self, unit: _Unit) -> None:
        assert unit.path is not None
        for _ in range(_REREADS):
            seen = unit.signals
            snapshot = await self.manager.unit_properties(unit.name, unit.path)
            if unit.signals == seen:
                break  # no signal overtook the read: it is the newest state
        self._update(unit, snapshot)

    async def _forget(self, unit: _Unit) -> None:
        path, unit.path = unit.path, None
        if path is None or any(u.path == path for u in self._units.values() if u is not unit):
            return
        self._watched.discard(path)
        try:
            await self.manager.unwatch(path)
        except SystemdError as err:
            log.info("could not stop watching %s: %s", unit.name, err)

    def _on_properties(self, path: str, interface: str, changed: Mapping[str, Any]) -> None:
        for unit in self._units.values():
            if unit.path == path:
                unit.signals += 1
                if unit.snapshot is not None:
                    self._update(unit, unit.snapshot.merged(interface, changed))

    async def _bring_to_target(self, unit: _Unit) -> None:
        try:
            if unit.path is None:
                await self._track(unit)
            result = await self._start_or_stop(unit)
        except SystemdError as err:
            log.warning("%s/%s: %s", unit.spec.application, unit.spec.service, err)
            if unit.path is None:  # never read: say why
                self._set(unit, Mapped(ServiceStatus.UNKNOWN, str(err)))
            return
        if result not in (None, "done"):
            log.warning(
                "%s/%s: bringing %s to %s ended '%s'",
                unit.spec.application,
                unit.spec.service,
                unit.name,
                unit.spec.target,
                result,
            )

    async def _start_or_stop(self, unit: _Unit) -> str | None:
        """The job result, or None when the unit is where its target says, or does not exist.

        Under `observe` a unit is left as drover finds it, also when it first sees it (drover
        did not start these units): it is brought to its target only when the target changes,
        by config or by a person's override."""
        snapshot = unit.snapshot
        if snapshot is None or snapshot.load_state == "not-found":
            return None
        if unit.spec.policy is Policy.OBSERVE:
            if not unit.retargeted:
                return None
            unit.retargeted = False
        up = snapshot.active_state in _UP
        if unit.spec.target is TargetStatus.RUNNING and not up:
            result = await self.manager.start_unit(unit.name)
        elif unit.spec.target is TargetStatus.STOPPED and up:
            result = await self.manager.stop_unit(unit.name)
        else:
            return None
        await self._refresh(unit)
        return result

    async def _job(self, kind: ActionKind, name: str) -> str:
        match kind:
            case ActionKind.START:
                return await self.manager.start_unit(name)
            case ActionKind.STOP:
                return await self.manager.stop_unit(name)
            case ActionKind.RESTART:
                return await self.manager.restart_unit(name)
            case ActionKind.COMMAND | ActionKind.PING:
                raise SystemdError(name, "drover.NotAJob", NOT_A_SERVICE_OPERATION)

    # -- the connection -----------------------------------------------------------------------

    async def _ensure_connected(self) -> bool:
        async with self._connect_lock:
            if self.manager.connected:
                return True
            try:
                await self.connect()
            except SystemdError as err:
                if not self._unreachable:
                    log.warning("systemd not reachable: %s", err)
                self._unreachable = True
                for unit in self._units.values():
                    self._set(unit, Mapped(ServiceStatus.UNKNOWN, f"systemd not reachable: {err}"))
                return False
            if self._unreachable:
                log.info("systemd reachable again at %s", self.manager.address)
            self._unreachable = False
            return True

    async def _watch_connection(self, generation: int) -> None:
        await self.manager.wait_disconnected()
        if self._closed or generation != self._generation:
            return  # closed on purpose, or already replaced by a newer connection
        log.warning("lost the connection to systemd; reconnecting at the next apply")
        self._unreachable = True
        self._watched.clear()
        for unit in self._units.values():
            unit.path = None
            self._set(unit, Mapped(ServiceStatus.UNKNOWN, "lost the connection to systemd"))

    # -- states -------------------------------------------------------------------------------

    def _update(self, unit: _Unit, snapshot: UnitSnapshot) -> None:
        unit.snapshot = snapshot
        self._set(unit, snapshot.describe(), snapshot)

    def _set(self, unit: _Unit, mapped: Mapped, snapshot: UnitSnapshot | None = None) -> None:
        status, message = mapped
        pid = snapshot.main_pid if snapshot and status in _HAS_PID else 0
        since = snapshot.since if snapshot else None
        if since is None:
            since = unit.state.since if status is unit.state.status else self._clock.now()
        state = unit.state.model_copy(
            update={
                "status": status,
                "since": since,
                "pid": pid or None,
                "restarts": snapshot.n_restarts if snapshot else unit.state.restarts,
                "message": message,
            }
        )
        if state != unit.state:
            unit.state = state
            self._listeners(state)


def _moved(unit: _Unit, wanted: Mapping[tuple[str, str], DesiredService]) -> bool:
    """The service now names another unit: forget the old one, take on the new."""
    spec = wanted.get((unit.spec.application, unit.spec.service))
    return spec is not None and unit_name(spec) != unit.name


def _done(kind: ActionKind, unit: str, before: int | None, after: int | None) -> str:
    """What a unit's job did, said in one line (a job that did not end `done` raised before)."""
    match kind:
        case ActionKind.START:
            return f"started {unit} (pid {after or '-'})"
        case ActionKind.STOP:
            return f"stopped {unit} (was pid {before or '-'})"
        case ActionKind.RESTART:
            return f"restarted {unit} (pid {before or '-'} → {after or '-'})"
        case ActionKind.COMMAND | ActionKind.PING:  # refused by `_job` before anything ran
            raise AssertionError(NOT_A_SERVICE_OPERATION)
