"""Record real unit properties from a systemd booted in a namespace, for test_mapping.py.

    .venv/bin/python -m tests.agent.systemd.record

Each recorded/<case>.json holds what GetAll returned for the Unit and (for a service) the
Service interface of one unit caught in one state, with the systemd version that answered.
Only the properties the provider reads, plus a few that identify the unit, are kept: the full
set is several hundred values per unit that no test looks at.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from tests.systemd_namespace import SystemdNamespace

RECORDED = Path(__file__).parent / "recorded"
KEEP = {
    "org.freedesktop.systemd1.Unit": [
        "Id",
        "Description",
        "LoadState",
        "ActiveState",
        "SubState",
        "UnitFileState",
        "StateChangeTimestamp",
    ],
    "org.freedesktop.systemd1.Service": [
        "Type",
        "Result",
        "MainPID",
        "NRestarts",
        "MemoryCurrent",
        "ExecMainStatus",
    ],
}

SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"
UNITS = {
    "rec-running.service": SLEEPER,
    "rec-inactive.service": SLEEPER,
    "rec-failed.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    "rec-oneshot.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    "rec-activating.service": "[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n",
    "rec-auto-restart.service": (
        "[Unit]\nStartLimitIntervalSec=0\n"
        "[Service]\nExecStart=/bin/false\nRestart=always\nRestartSec=1\n"
    ),
    "rec-deactivating.service": SLEEPER + "ExecStop=/bin/sleep 60\n",
    "rec-reloading.service": SLEEPER + "ExecReload=/bin/sleep 60\n",
}
# case → (unit, systemctl commands that put it in that state)
CASES: dict[str, tuple[str, list[list[str]]]] = {
    "running": ("rec-running.service", [["start", "rec-running.service"]]),
    "inactive": (
        "rec-inactive.service",
        [["start", "rec-inactive.service"], ["stop", "rec-inactive.service"]],
    ),
    "failed": ("rec-failed.service", [["start", "rec-failed.service"]]),
    "oneshot_exited": ("rec-oneshot.service", [["start", "rec-oneshot.service"]]),
    "activating": ("rec-activating.service", [["start", "--no-block", "rec-activating.service"]]),
    "auto_restart": ("rec-auto-restart.service", [["start", "rec-auto-restart.service"]]),
    "deactivating": (
        "rec-deactivating.service",
        [["start", "rec-deactivating.service"], ["stop", "--no-block", "rec-deactivating.service"]],
    ),
    "reloading": (
        "rec-reloading.service",
        [["start", "rec-reloading.service"], ["reload", "--no-block", "rec-reloading.service"]],
    ),
    "masked": ("rec-masked.service", [["mask", "--runtime", "rec-masked.service"]]),
    "not_found": ("rec-no-such-unit.service", []),
}


async def record(namespace: SystemdNamespace) -> None:
    bus = await MessageBus(bus_address=namespace.bus_address, bus_type=BusType.SYSTEM).connect()
    version = namespace.systemctl("--version").stdout.splitlines()[0]
    try:
        for case, (unit, commands) in CASES.items():
            for command in commands:
                namespace.systemctl(*command, check=case != "failed")
            if case == "auto_restart":
                await _until_restarted(bus, unit)
            else:
                await asyncio.sleep(0.3)  # let --no-block jobs get going
            recorded: dict[str, Any] = {"case": case, "systemd": version}
            for interface, keep in KEEP.items():
                props = await _get_all(bus, unit, interface)
                recorded[interface] = {k: props[k] for k in keep}
            (RECORDED / f"{case}.json").write_text(json.dumps(recorded, indent=2) + "\n")
            print(case, recorded["org.freedesktop.systemd1.Unit"]["SubState"])
    finally:
        bus.disconnect()


async def _until_restarted(bus: MessageBus, unit: str) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        service = await _get_all(bus, unit, "org.freedesktop.systemd1.Service")
        state = await _get_all(bus, unit, "org.freedesktop.systemd1.Unit")
        if service["NRestarts"] >= 1 and state["SubState"] == "auto-restart":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{unit} never reached auto-restart after a restart")


async def _get_all(bus: MessageBus, unit: str, interface: str) -> dict[str, Any]:
    reply = await bus.call(
        Message(
            destination="org.freedesktop.systemd1",
            path="/org/freedesktop/systemd1",
            interface="org.freedesktop.systemd1.Manager",
            member="LoadUnit",
            signature="s",
            body=[unit],
        )
    )
    assert reply.message_type is MessageType.METHOD_RETURN, reply.body
    reply = await bus.call(
        Message(
            destination="org.freedesktop.systemd1",
            path=reply.body[0],
            interface="org.freedesktop.DBus.Properties",
            member="GetAll",
            signature="s",
            body=[interface],
        )
    )
    assert reply.message_type is MessageType.METHOD_RETURN, reply.body
    return {name: variant.value for name, variant in reply.body[0].items()}


def main() -> None:
    namespace = SystemdNamespace.boot()
    try:
        namespace.write_units(UNITS)
        asyncio.run(record(namespace))
    finally:
        namespace.stop()


if __name__ == "__main__":
    main()
