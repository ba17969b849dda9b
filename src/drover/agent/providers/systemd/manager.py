"""A thin, typed adapter over dbus-fast for systemd's manager (`org.freedesktop.systemd1`).

Every call has a timeout, and every failure — a D-Bus error reply, a timeout, a lost or refused
connection — comes out as `SystemdError`. Jobs (start, stop, …) are awaited to their end through
the manager's `JobRemoved` signal; unit changes arrive as `PropertiesChanged` signals for the
object paths being watched, and changes to the set of units as the manager's `UnitNew`,
`UnitRemoved`, `UnitFilesChanged` and `Reloading` signals, for a connection that asks for them.
Nothing here polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from drover.agent.providers.systemd.errors import SystemdError
from drover.agent.providers.systemd.mapping import (
    SERVICE_INTERFACE,
    UNIT_INTERFACE,
    UnitSnapshot,
)
from drover.ops.cancels import bounded

__all__ = [
    "ListedUnit",
    "PropertiesListener",
    "SystemdError",
    "SystemdManager",
    "UnitFile",
    "UnitSetListener",
]

log = logging.getLogger(__name__)

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_INTERFACE = "org.freedesktop.systemd1.Manager"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"

JOB_REMOVED_RULE = (
    f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',"
    f"interface='{MANAGER_INTERFACE}',member='JobRemoved'"
)
OWNER_CHANGED_RULE = (
    f"type='signal',sender='{DBUS}',path='{DBUS_PATH}',interface='{DBUS}',"
    f"member='NameOwnerChanged',arg0='{SYSTEMD}'"
)

# The manager's signals that say the set of units (or what systemd read of their files) may have
# changed: UnitNew(s id, o path), UnitRemoved(s id, o path), UnitFilesChanged(), Reloading(b).
UNIT_SET_SIGNALS = ("UnitNew", "UnitRemoved", "UnitFilesChanged", "Reloading")

# D-Bus error names systemd answers with
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"

# (interface, changed properties as plain values) for one watched unit
PropertiesListener = Callable[[str, Mapping[str, Any]], None]
# (signal name, unit name for UnitNew and UnitRemoved, else None)
UnitSetListener = Callable[[str, str | None], None]


class ListedUnit(NamedTuple):
    """One entry of the manager's ListUnits, `a(ssssssouso)`."""

    name: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    following: str
    path: str
    job_id: int
    job_type: str
    job_path: str


class UnitFile(NamedTuple):
    """One entry of the manager's ListUnitFiles, `a(ss)`."""

    path: str
    state: str  # enabled, disabled, static, masked, alias, transient, …


def properties_rule(path: str) -> str:
    return (
        f"type='signal',sender='{SYSTEMD}',path='{path}',"
        f"interface='{PROPERTIES_INTERFACE}',member='PropertiesChanged'"
    )


def manager_signal_rule(member: str) -> str:
    return (
        f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',"
        f"interface='{MANAGER_INTERFACE}',member='{member}'"
    )


def system_bus_address(explicit: str | None = None) -> str:
    """The address to use: the caller's, else $DBUS_SYSTEM_BUS_ADDRESS, else the standard one."""
    return explicit or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


class SystemdManager:
    def __init__(
        self,
        bus_address: str | None = None,
        *,
        call_timeout: float = 10.0,
        job_timeout: float = 120.0,
    ) -> None:
        self.address = system_bus_address(bus_address)
        self.calls: Counter[str] = Counter()  # D-Bus method name → calls made; for inspection
        self._call_timeout = call_timeout
        self._job_timeout = job_timeout
        self._bus: MessageBus | None = None
        self._owner: str | None = None  # systemd's unique name: the only sender we believe
        self._watches: dict[str, PropertiesListener] = {}
        self._unit_set_listener: UnitSetListener | None = None
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._jobs_in_flight = 0
        self._finished_early: dict[str, str] = {}  # JobRemoved seen before its caller listened

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    @property
    def unique_name(self) -> str | None:
        """This connection's name on the bus."""
        return self._bus.unique_name if self._bus is not None else None

    async def connect(self) -> None:
        """Connect (again) and subscribe to the manager's signals; raise SystemdError if
        systemd cannot be reached."""
        await self.close()
        bus = await self._open()
        self._bus = bus
        bus.add_message_handler(self._on_message)
        try:
            [self._owner] = await self._call(DBUS_PATH, DBUS, "GetNameOwner", "s", [SYSTEMD])
            await self._add_match(OWNER_CHANGED_RULE)
            await self._add_match(JOB_REMOVED_RULE)
            await self._call(MANAGER_PATH, MANAGER_INTERFACE, "Subscribe")
        except SystemdError:
            await self.close()
            raise

    async def _open(self) -> MessageBus:
        bus: MessageBus | None = None
        try:
            # dbus-fast < 5 connects in the constructor, later versions in connect()
            bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM)
            await bounded(bus.connect(), self._call_timeout)
        except Exception as err:  # OSError, AuthError, TimeoutError, InvalidAddressError, …
            if bus is not None:
                bus.disconnect()
            text = f"cannot connect to {self.address}: {err!r}"
            raise SystemdError(None, type(err).__name__, text) from err
        return bus

    async def wait_disconnected(self) -> None:
        """Return when the current connection is gone, however it went; jobs still waiting on
        it then fail."""
        bus = self._bus
        if bus is not None:
            with contextlib.suppress(Exception):  # how it ended does not matter, only that it did
                await _gone(bus)
        if bus is self._bus:
            self._fail_jobs()

    async def close(self) -> None:
        """Disconnect. Units are left exactly as they are."""
        bus, self._bus = self._bus, None
        self._watches.clear()
        self._unit_set_listener = None
        self._fail_jobs()
        if bus is not None and bus.connected:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await bounded(_gone(bus), self._call_timeout)

    async def load_unit(self, name: str) -> str:
        """The unit's object path; systemd answers even for a unit that does not exist."""
        [path] = await self._call(MANAGER_PATH, MANAGER_INTERFACE, "LoadUnit", "s", [name], name)
        return str(path)

    async def unit_properties(self, name: str, path: str) -> UnitSnapshot:
        unit = await self._get_all(name, path, UNIT_INTERFACE)
        service = (
            await self._get_all(name, path, SERVICE_INTERFACE) if name.endswith(".service") else {}
        )
        return UnitSnapshot.from_properties(name, unit, service)

    async def properties(self, name: str, path: str, interface: str) -> dict[str, Any]:
        """Every property of one of the unit's interfaces, as plain values."""
        return await self._get_all(name, path, interface)

    async def property(self, name: str, path: str, interface: str, prop: str) -> Any:
        """One property of one of the unit's interfaces, as a plain value."""
        [value] = await self._call(path, PROPERTIES_INTERFACE, "Get", "ss", [interface, prop], name)
        return value.value

    async def list_units(self) -> list[ListedUnit]:
        """Every unit systemd has loaded (also those it tried to load and did not find)."""
        [units] = await self._call(MANAGER_PATH, MANAGER_INTERFACE, "ListUnits")
        return [ListedUnit._make(unit) for unit in units]

    async def list_unit_files(self) -> list[UnitFile]:
        """Every unit file in systemd's search path, loaded or not."""
        [files] = await self._call(MANAGER_PATH, MANAGER_INTERFACE, "ListUnitFiles")
        return [UnitFile._make(file) for file in files]

    async def start_unit(self, name: str, mode: str = "replace") -> str:
        return await self._job("StartUnit", name, mode)

    async def start_transient_unit(
        self, name: str, properties: Sequence[tuple[str, Variant]], mode: str = "replace"
    ) -> str:
        """Create the unit from `properties` and start it; raises SystemdError
        `org.freedesktop.systemd1.UnitExists` when a unit of that name is loaded already."""
        body = [name, mode, list(properties), []]
        return await self._run_job("StartTransientUnit", name, "ssa(sv)a(sa(sv))", body)

    async def stop_unit(self, name: str, mode: str = "replace") -> str:
        return await self._job("StopUnit", name, mode)

    async def restart_unit(self, name: str, mode: str = "replace") -> str:
        return await self._job("RestartUnit", name, mode)

    async def reload_unit(self, name: str, mode: str = "replace") -> str:
        return await self._job("ReloadUnit", name, mode)

    async def watch(self, path: str, listener: PropertiesListener) -> None:
        """Call `listener` with every PropertiesChanged systemd sends for `path`."""
        self._watches[path] = listener
        try:
            await self._add_match(properties_rule(path))
        except SystemdError:
            self._watches.pop(path, None)
            raise

    async def watch_unit_set(self, listener: UnitSetListener) -> None:
        """Call `listener` with every signal systemd sends that says units may have come or gone
        (UNIT_SET_SIGNALS), until the connection closes. Only the connection that asks gets
        them: a reload sends two for every unit."""
        self._unit_set_listener = listener
        try:
            for member in UNIT_SET_SIGNALS:
                await self._add_match(manager_signal_rule(member))
        except SystemdError:
            self._unit_set_listener = None
            raise

    async def unwatch(self, path: str) -> None:
        if self._watches.pop(path, None) is not None and self.connected:
            await self._call(DBUS_PATH, DBUS, "RemoveMatch", "s", [properties_rule(path)])

    async def _job(self, method: str, name: str, mode: str) -> str:
        return await self._run_job(method, name, "ss", [name, mode])

    async def _run_job(self, method: str, name: str, signature: str, body: Sequence[Any]) -> str:
        """Queue a job and wait for its result: done, failed, timeout, canceled, dependency,
        skipped (or invalid)."""
        self._jobs_in_flight += 1
        try:
            [job] = await self._call(MANAGER_PATH, MANAGER_INTERFACE, method, signature, body, name)
            if (result := self._finished_early.pop(job, None)) is not None:
                return result
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._job_waiters[job] = waiter
            try:
                async with asyncio.timeout(self._job_timeout):  # see _call on why not wait_for
                    return await waiter
            except TimeoutError as err:
                text = f"{method} job {job} did not end within {self._job_timeout}s"
                raise SystemdError(name, "drover.JobTimeout", text) from err
            finally:
                self._job_waiters.pop(job, None)
        finally:
            self._jobs_in_flight -= 1
            if not self._jobs_in_flight:
                self._finished_early.clear()

    def _fail_jobs(self) -> None:
        lost = SystemdError(None, "drover.Disconnected", "the connection to systemd was lost")
        for waiter in self._job_waiters.values():
            if not waiter.done():
                waiter.set_exception(lost)
        self._job_waiters.clear()

    async def _get_all(self, name: str, path: str, interface: str) -> dict[str, Any]:
        [props] = await self._call(path, PROPERTIES_INTERFACE, "GetAll", "s", [interface], name)
        return _plain(props)

    async def _add_match(self, rule: str) -> None:
        await self._call(DBUS_PATH, DBUS, "AddMatch", "s", [rule])

    async def _call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
        unit: str | None = None,
    ) -> list[Any]:
        bus = self._bus
        if bus is None or not bus.connected:
            raise SystemdError(unit, "drover.NotConnected", "not connected to systemd")
        destination = DBUS if path == DBUS_PATH else SYSTEMD
        msg = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
        self.calls[member] += 1
        try:
            # Not wait_for: on Python 3.11 it swallows a cancellation that comes as the reply
            # arrives, and a loop making many calls would then outlive its own cancellation.
            async with asyncio.timeout(self._call_timeout):
                reply = await bus.call(msg)
        except TimeoutError as err:
            text = f"{member} got no answer within {self._call_timeout}s"
            raise SystemdError(unit, "drover.Timeout", text) from err
        except Exception as err:  # the connection broke under the call
            raise SystemdError(unit, type(err).__name__, f"{member}: {err}") from err
        if reply.message_type is MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else member
            raise SystemdError(unit, reply.error_name or "unknown", text)
        return list(reply.body)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.interface == DBUS and msg.sender == DBUS:
            if msg.body[0] == SYSTEMD:
                self._owner = msg.body[2] or None
        elif msg.sender != self._owner:
            return  # anyone may send us a signal; only systemd's count
        elif msg.member == "PropertiesChanged" and msg.interface == PROPERTIES_INTERFACE:
            if (listener := self._watches.get(msg.path or "")) is not None:
                interface, changed, _invalidated = msg.body
                listener(interface, _plain(changed))
        elif msg.interface != MANAGER_INTERFACE or msg.path != MANAGER_PATH:
            return
        elif msg.member == "JobRemoved":
            _id, job, _unit, result = msg.body
            self._job_removed(job, result)
        elif msg.member in UNIT_SET_SIGNALS and self._unit_set_listener is not None:
            unit = msg.body[0] if msg.member in ("UnitNew", "UnitRemoved") else None
            self._unit_set_listener(msg.member, unit)

    def _job_removed(self, job: str, result: str) -> None:
        if (waiter := self._job_waiters.get(job)) is not None:
            if not waiter.done():
                waiter.set_result(result)
        elif self._jobs_in_flight:
            self._finished_early[job] = result


def _plain(props: Mapping[str, Variant]) -> dict[str, Any]:
    return {name: variant.value for name, variant in props.items()}


async def _gone(bus: MessageBus) -> None:
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]  # untyped in dbus-fast
