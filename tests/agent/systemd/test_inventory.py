"""The unit inventory against a real systemd booted in a namespace and a real nats-server: what
is listed, that changes reach KV by signal, vanished units, restarts and a systemd that goes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.errors import KeyNotFoundError

from drover.agent.app import Agent, AgentSettings
from drover.agent.inventory import Inventory
from drover.agent.providers.systemd.inventory import UnitLister
from drover.agent.providers.systemd.manager import SystemdManager
from drover.bus import subjects, topology
from drover.bus.connection import Bus, BusSettings
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import UnitInfo, UnitInventory, decode
from drover.ops.clock import SystemClock
from drover.ops.counters import Counters
from drover.ops.loops import forever
from tests.busauth import bus_settings, enroll_directly
from tests.conftest import eventually
from tests.systemd_namespace import SystemdNamespace

pytestmark = pytest.mark.systemd

HOST = "h1"
SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"
_numbers = itertools.count(1)


def prefix() -> str:
    """A name prefix of the test's own: tests share one systemd."""
    return f"inv{next(_numbers)}"


@contextlib.asynccontextmanager
async def bus_for(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    bus = Bus(bus_settings(nats_server, "test-inventory"), Counters())
    await bus.connect()
    await topology.ensure(bus.js)
    try:
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def keeping(
    bus: Bus, systemd: SystemdNamespace, data_dir: Path, lister: UnitLister | None = None
) -> AsyncIterator[Inventory]:
    """An Inventory with both its loops running, as the agent runs them."""
    lister = lister or UnitLister(systemd.bus_address, systemd.root)
    inventory = Inventory(HOST, bus, lister, data_dir / "inventory.json", SystemClock())
    async with asyncio.TaskGroup() as tg:
        loops = [
            tg.create_task(forever(name, body, bus.counters))
            for name, body in (
                ("agent.inventory", inventory.keep_current),
                ("agent.inventory_publish", inventory.publish),
            )
        ]
        try:
            yield inventory
        finally:
            for loop in loops:
                loop.cancel()
    assert not lister.connected  # the listing loop disconnected from systemd as it ended


async def published(bus: Bus) -> UnitInventory | None:
    kv = await bus.kv(subjects.INVENTORY_BUCKET)
    try:
        entry = await kv.get(subjects.inventory_key(HOST))
    except KeyNotFoundError:
        return None
    assert entry.value is not None
    return decode(UnitInventory, entry.key, entry.value)


async def units_in_kv(bus: Bus, start: str) -> dict[str, UnitInfo]:
    """The units in KV whose names start with `start`."""
    inventory = await published(bus)
    units = inventory.units if inventory is not None else []
    return {unit.unit: unit for unit in units if unit.unit.startswith(start)}


def drop_in(systemd: SystemdNamespace, unit: str, name: str, text: str) -> Path:
    folder = systemd.root / "run/systemd/system" / f"{unit}.d"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def remove_unit(systemd: SystemdNamespace, unit: str) -> None:
    (systemd.root / "run/systemd/system" / unit).unlink()
    systemd.systemctl("daemon-reload")


async def loaded_names(systemd: SystemdNamespace) -> set[str]:
    manager = SystemdManager(systemd.bus_address)
    await manager.connect()
    try:
        return {unit.name for unit in await manager.list_units()}
    finally:
        await manager.close()


async def test_units_are_listed_with_description_slice_and_drover_keys(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    systemd.write_units(
        {
            f"{p}-web.service": (
                "[Unit]\nDescription=Shop web\nX-Drover-Application=shop\n\n"
                "[Service]\nSlice=shop.slice\nExecStart=/bin/sleep infinity\n"
                "X-Drover-Tier=web\nX-Drover-Team=checkout\n"
            ),
            f"{p}-web.socket": f"[Socket]\nListenStream=/run/{p}.sock\nService={p}-web.service\n",
            f"{p}-clean.timer": "[Unit]\nDescription=Clean up\n[Timer]\nOnCalendar=daily\n",
            f"{p}-clean.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            f"{p}-worker@.service": SLEEPER,  # a template
            f"drover-{p}-file.service": SLEEPER,  # named like drover's, but has a unit file
        }
    )
    drop_in(systemd, f"{p}-web.service", "50-tier.conf", "[Service]\nX-Drover-Tier=api\n")
    systemd.systemctl("daemon-reload")
    systemd.systemctl("start", f"{p}-web.service", f"{p}-worker@one.service")
    # one of the agent's own transient units (transient.py names them so)
    run = ["nsenter", "-t", str(systemd.pid), "-p", "-m", "systemd-run", "--no-block"]
    proc = await asyncio.create_subprocess_exec(
        *run, f"--unit=drover-{p}-web.service", "/bin/sleep", "infinity"
    )
    assert await proc.wait() == 0
    # Only unit files, never loaded: the listing loads them to read them.
    assert {f"{p}-clean.service", f"{p}-clean.timer"}.isdisjoint(await loaded_names(systemd))

    async with bus_for(nats_server) as bus, keeping(bus, systemd, tmp_path):
        await eventually(lambda: units_in_kv(bus, p))
        await eventually(lambda: units_in_kv(bus, f"drover-{p}"))
        assert await units_in_kv(bus, p) == {
            f"{p}-web.service": UnitInfo(
                unit=f"{p}-web.service",
                description="Shop web",
                slice="shop.slice",
                properties={
                    "X-Drover-Application": "shop",
                    "X-Drover-Tier": "api",  # the drop-in's
                    "X-Drover-Team": "checkout",
                },
            ),
            f"{p}-web.socket": UnitInfo(
                unit=f"{p}-web.socket", description=f"{p}-web.socket", slice="system.slice"
            ),
            f"{p}-clean.timer": UnitInfo(unit=f"{p}-clean.timer", description="Clean up"),
            f"{p}-clean.service": UnitInfo(
                unit=f"{p}-clean.service",
                description=f"{p}-clean.service",
                slice="system.slice",
            ),
            f"{p}-worker@one.service": UnitInfo(
                unit=f"{p}-worker@one.service",
                description=f"{p}-worker@one.service",
                slice=f"system-{p}\\x2dworker.slice",  # systemd's slice for instances
                ephemeral=True,  # an instance: no unit file of its own
            ),
        }
        assert list(await units_in_kv(bus, f"drover-{p}")) == [f"drover-{p}-file.service"]
    systemd.systemctl(
        "stop", f"drover-{p}-web.service", f"{p}-web.service", f"{p}-worker@one.service"
    )


async def test_a_transient_unit_of_another_tool_is_listed_and_simply_gone_when_it_ends(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    run = ["nsenter", "-t", str(systemd.pid), "-p", "-m", "systemd-run", "--no-block"]
    proc = await asyncio.create_subprocess_exec(
        *run, f"--unit={p}-job.service", "/bin/sleep", "infinity"
    )
    assert await proc.wait() == 0
    async with bus_for(nats_server) as bus, keeping(bus, systemd, tmp_path):
        await eventually(lambda: units_in_kv(bus, p))
        [job] = (await units_in_kv(bus, p)).values()
        assert (job.unit, job.ephemeral, job.vanished_since) == (f"{p}-job.service", True, None)
        systemd.systemctl("stop", f"{p}-job.service")  # systemd then forgets the unit

        async def gone() -> bool:
            return await units_in_kv(bus, p) == {}

        await eventually(gone)  # not kept as vanished: one-off jobs would pile up


async def test_a_new_unit_file_reaches_kv_on_the_reload_signal_with_one_listing(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    systemd.write_units({f"{p}-a.service": SLEEPER})
    lister = UnitLister(systemd.bus_address, systemd.root)
    async with bus_for(nats_server) as bus, keeping(bus, systemd, tmp_path, lister):
        await eventually(lambda: units_in_kv(bus, p))
        listings = lister.manager.calls["ListUnits"]
        # The reload sends a signal for every unit, twice: one listing after they settle.
        await asyncio.to_thread(systemd.write_units, {f"{p}-b.service": SLEEPER})

        async def both() -> bool:
            return set(await units_in_kv(bus, p)) == {f"{p}-a.service", f"{p}-b.service"}

        await eventually(both, timeout=5)
        assert lister.manager.calls["ListUnits"] == listings + 1


async def test_a_removed_unit_is_marked_vanished_and_unmarked_when_it_returns(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    gone, stays = f"{p}-gone.service", f"{p}-stays.service"
    systemd.write_units({gone: SLEEPER, stays: SLEEPER})
    async with bus_for(nats_server) as bus, keeping(bus, systemd, tmp_path):
        await eventually(lambda: _has(bus, p, {gone, stays}))
        before = datetime.now(UTC)
        await asyncio.to_thread(remove_unit, systemd, gone)

        async def vanished() -> UnitInfo | None:
            unit = (await units_in_kv(bus, p)).get(gone)
            return unit if unit is not None and unit.vanished_since is not None else None

        await eventually(vanished)
        marked = await vanished()
        assert marked is not None and marked.vanished_since is not None
        assert before <= marked.vanished_since <= datetime.now(UTC)
        assert (await units_in_kv(bus, p))[stays].vanished_since is None

        await asyncio.to_thread(systemd.write_units, {gone: SLEEPER})

        async def back() -> bool:
            unit = (await units_in_kv(bus, p)).get(gone)
            return unit is not None and unit.vanished_since is None

        await eventually(back)


async def _has(bus: Bus, start: str, names: set[str]) -> bool:
    return set(await units_in_kv(bus, start)) == names


async def test_a_unit_that_went_while_the_agent_was_down_is_vanished_after_it_starts(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    gone, stays = f"{p}-gone.service", f"{p}-stays.service"
    systemd.write_units({gone: SLEEPER, stays: SLEEPER})
    async with bus_for(nats_server) as bus:
        async with keeping(bus, systemd, tmp_path):
            await eventually(lambda: _has(bus, p, {gone, stays}))
        assert (tmp_path / "inventory.json").exists()
        await asyncio.to_thread(remove_unit, systemd, gone)

        async with keeping(bus, systemd, tmp_path) as inventory:

            async def vanished() -> bool:
                unit = (await units_in_kv(bus, p)).get(gone)
                return unit is not None and unit.vanished_since is not None

            await eventually(vanished)
            assert inventory.current is not None
            assert [u.unit for u in inventory.current.units if u.vanished_since] == [gone]


async def test_a_drop_in_that_cannot_be_read_is_left_out_and_the_rest_listed(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    unit = f"{p}-web.service"
    systemd.write_units({unit: SLEEPER + "X-Drover-Application=shop\n"})
    missing = drop_in(systemd, unit, "10-gone.conf", "[Service]\nX-Drover-Tier=api\n")
    drop_in(systemd, unit, "20-here.conf", "[Service]\nX-Drover-Team=checkout\n")
    systemd.systemctl("daemon-reload")
    missing.unlink()  # systemd still names it in DropInPaths: it read it before
    async with bus_for(nats_server) as bus, keeping(bus, systemd, tmp_path):
        await eventually(lambda: units_in_kv(bus, p))
        assert (await units_in_kv(bus, p))[unit].properties == {
            "X-Drover-Application": "shop",
            "X-Drover-Team": "checkout",
        }


async def test_losing_systemd_keeps_the_last_inventory_and_is_logged_once(
    own_systemd: SystemdNamespace,
    nats_server: EmbeddedNats,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    own_systemd.write_units({"kept.service": SLEEPER})
    async with bus_for(nats_server) as bus, keeping(bus, own_systemd, tmp_path) as inventory:
        await eventually(lambda: units_in_kv(bus, "kept"))
        before = await published(bus)
        assert before is not None
        with caplog.at_level(logging.WARNING, logger="drover.ops.loops"):
            await asyncio.to_thread(own_systemd.stop)
            # lost, then one failed reconnect after another, backing off
            await eventually(lambda: bus.counters.get("loop_errors.agent.inventory") >= 3)
        failures = [r for r in caplog.records if "agent.inventory failed" in r.getMessage()]
        assert len(failures) == 1
        assert inventory.current == before
        after = await published(bus)
        assert after == before
        assert not [unit for unit in after.units if unit.vanished_since is not None]


async def test_the_agent_publishes_its_inventory_when_systemd_is_there_only(
    systemd: SystemdNamespace, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    p = prefix()
    systemd.write_units({f"{p}-a.service": SLEEPER + "X-Drover-Application=shop\n"})
    async with bus_for(nats_server) as bus:
        for host, mode in ((HOST, "on"), ("h2", "off")):
            stop = asyncio.Event()
            await enroll_directly(nats_server, host, tmp_path / host)
            agent = Agent(
                AgentSettings(
                    host_id=host,
                    data_dir=tmp_path / host,
                    bus=BusSettings(name=f"test-agent-{host}"),
                    drain_timeout=5.0,
                    systemd=mode,  # type: ignore[arg-type]
                    systemd_bus_address=systemd.bus_address,
                    systemd_root=systemd.root,
                )
            )
            run = asyncio.create_task(agent.run(stop))
            await asyncio.wait_for(agent.ready.wait(), 20)
            if mode == "on":

                async def listed() -> bool:
                    units = await units_in_kv(bus, p)
                    return units.get(f"{p}-a.service", UnitInfo(unit="")).properties == {
                        "X-Drover-Application": "shop"
                    }

                await eventually(listed)
                assert (tmp_path / host / "inventory.json").exists()
            else:
                assert agent.inventory is None
            stop.set()
            await asyncio.wait_for(run, 10)  # drains: the inventory loops end with the rest
        kv = await bus.kv(subjects.INVENTORY_BUCKET)
        with pytest.raises(KeyNotFoundError):
            await kv.get(subjects.inventory_key("h2"))
