"""SystemdManager, the D-Bus adapter, against a real systemd booted in a namespace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from drover.agent.providers.systemd.manager import SystemdError, SystemdManager
from drover.agent.providers.systemd.mapping import SERVICE_INTERFACE as SERVICE
from drover.agent.providers.systemd.mapping import UNIT_INTERFACE
from tests.agent.systemd.conftest import Units
from tests.conftest import eventually
from tests.systemd_namespace import SystemdNamespace

pytestmark = pytest.mark.systemd


@contextlib.asynccontextmanager
async def manager_for(systemd: SystemdNamespace, **options: float) -> AsyncIterator[SystemdManager]:
    manager = SystemdManager(systemd.bus_address, **options)
    await manager.connect()
    try:
        yield manager
    finally:
        await manager.close()


async def test_jobs_are_awaited_to_their_result(systemd: SystemdNamespace, units: Units) -> None:
    async with manager_for(systemd) as manager:
        results = await asyncio.gather(
            manager.start_unit(units.sleeper),
            manager.start_unit(units.oneshot),
            manager.start_unit(units.failing),
            manager.start_unit(units.reloadable),
        )
        assert list(results) == ["done", "done", "failed", "done"]
        assert await manager.reload_unit(units.reloadable) == "done"
        assert await manager.restart_unit(units.sleeper) == "done"
        assert await manager.stop_unit(units.sleeper) == "done"
        path = await manager.load_unit(units.sleeper)
        assert (await manager.unit_properties(units.sleeper, path)).active_state == "inactive"


async def test_a_dbus_error_becomes_a_systemd_error_with_its_name(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with manager_for(systemd) as manager:
        with pytest.raises(SystemdError) as missing:
            await manager.start_unit(units.missing)
        assert (missing.value.unit, missing.value.name) == (
            units.missing,
            "org.freedesktop.systemd1.NoSuchUnit",
        )
        with pytest.raises(SystemdError) as no_reload:
            await manager.reload_unit(units.oneshot)  # no ExecReload
        assert no_reload.value.name == "org.freedesktop.systemd1.JobTypeNotApplicable"


async def test_a_job_that_does_not_end_in_time_raises(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with manager_for(systemd, job_timeout=0.3) as manager:
        with pytest.raises(SystemdError) as slow:
            await manager.start_unit(units.slow)
        assert (slow.value.unit, slow.value.name) == (units.slow, "drover.JobTimeout")


async def test_a_job_still_waiting_when_the_connection_closes_fails_at_once(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with manager_for(systemd) as manager:
        job = asyncio.create_task(manager.start_unit(units.slow))
        await eventually(lambda: manager.calls["StartUnit"] == 1)
        await asyncio.sleep(0.1)
        await manager.close()
        with pytest.raises(SystemdError) as lost:
            await asyncio.wait_for(job, 5)
        assert lost.value.name == "drover.Disconnected"
        with pytest.raises(SystemdError, match="not connected"):
            await manager.load_unit(units.sleeper)


async def test_watched_units_report_changes_and_spoofed_signals_are_ignored(
    systemd: SystemdNamespace, units: Units
) -> None:
    changes: list[tuple[str, Mapping[str, Any]]] = []
    async with manager_for(systemd) as manager:
        path = await manager.load_unit(units.sleeper)
        await manager.watch(path, lambda interface, changed: changes.append((interface, changed)))

        impostor = await MessageBus(
            bus_address=systemd.bus_address, bus_type=BusType.SYSTEM
        ).connect()
        try:
            await impostor.send(
                Message(
                    message_type=MessageType.SIGNAL,
                    destination=manager.unique_name,
                    path=path,
                    interface="org.freedesktop.DBus.Properties",
                    member="PropertiesChanged",
                    signature="sa{sv}as",
                    body=[UNIT_INTERFACE, {"ActiveState": Variant("s", "failed")}, []],
                )
            )
        finally:
            impostor.disconnect()
        await manager.start_unit(units.sleeper)
        await eventually(
            lambda: (
                ("active", "running")
                in [(c.get("ActiveState"), c.get("SubState")) for _, c in changes]
            )
        )
        assert all(c.get("ActiveState") != "failed" for _, c in changes)

        await manager.unwatch(path)
        seen = len(changes)
        await manager.stop_unit(units.sleeper)
        assert len(changes) == seen


async def test_the_address_comes_from_the_environment_when_not_given(
    systemd: SystemdNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", systemd.bus_address)
    manager = SystemdManager()
    assert manager.address == systemd.bus_address
    await manager.connect()
    assert manager.connected
    await manager.close()
    assert not manager.connected


async def test_units_and_unit_files_are_listed_and_set_changes_signalled_by_systemd_only(
    systemd: SystemdNamespace, units: Units
) -> None:
    signals: list[tuple[str, str | None]] = []
    async with manager_for(systemd) as manager:
        await manager.start_unit(units.sleeper)
        listed = {unit.name: unit for unit in await manager.list_units()}
        sleeper = listed[units.sleeper]
        assert (sleeper.load_state, sleeper.active_state, sleeper.sub_state) == (
            "loaded",
            "active",
            "running",
        )
        assert sleeper.path == await manager.load_unit(units.sleeper)
        files = {file.path: file.state for file in await manager.list_unit_files()}
        assert files[f"/run/systemd/system/{units.failing}"] == "static"
        assert await manager.property(units.sleeper, sleeper.path, SERVICE, "Slice") == (
            "system.slice"
        )

        await manager.watch_unit_set(lambda signal, unit: signals.append((signal, unit)))
        await impersonate_systemd(systemd, manager, "UnitNew", "s", ["spoofed.service"])
        await systemd.systemctl_async("daemon-reload")
        await eventually(lambda: ("Reloading", None) in signals)
        path = await manager.load_unit(units.missing)
        await manager.property(units.missing, path, UNIT_INTERFACE, "LoadState")
        await eventually(lambda: ("UnitNew", units.missing) in signals)
        assert ("UnitNew", "spoofed.service") not in signals
        await manager.stop_unit(units.sleeper)


async def impersonate_systemd(
    systemd: SystemdNamespace, manager: SystemdManager, member: str, signature: str, body: list[Any]
) -> None:
    """Send `manager` a manager signal from another connection than systemd's."""
    impostor = await MessageBus(bus_address=systemd.bus_address, bus_type=BusType.SYSTEM).connect()
    try:
        await impostor.send(
            Message(
                message_type=MessageType.SIGNAL,
                destination=manager.unique_name,
                path="/org/freedesktop/systemd1",
                interface="org.freedesktop.systemd1.Manager",
                member=member,
                signature=signature,
                body=body,
            )
        )
    finally:
        impostor.disconnect()
