"""The whole loop with a real systemd: config names a unit, the agent manages it over D-Bus."""

from __future__ import annotations

from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import fleet_of
from tests.systemd_namespace import SystemdNamespace

pytestmark = pytest.mark.systemd


async def test_a_unit_in_config_is_started_reported_and_restarted_through_the_api(
    nats_server: EmbeddedNats, tmp_path: Path, systemd: SystemdNamespace
) -> None:
    unit = "e2e-web.service"
    systemd.write_units({unit: "[Service]\nType=simple\nExecStart=/bin/sleep infinity\n"})
    config = {
        "apps.yaml": (
            "applications:\n  web:\n    hosts: [h1]\n    services:\n"
            f"      nginx: {{provider: systemd, unit: {unit}}}\n"
        )
    }
    async with fleet_of(nats_server, tmp_path, config) as fleet:
        await fleet.start_server()
        await fleet.start_agent("h1", systemd_bus=systemd.bus_address)

        async def reported() -> dict[str, object] | None:
            placed = (await fleet.get("/api/v1/applications/web"))["services"][0]["hosts"]
            if placed and placed[0]["status"] == "running" and placed[0]["pid"]:
                return dict(placed[0])
            return None

        await eventually(reported)  # inactive in systemd: the agent started it
        before = await reported()
        assert before is not None

        action = await run_action(fleet, {"kind": "restart", "application": "web"})
        assert action["state"] == "succeeded", action
        assert f"restarted {unit} (pid {before['pid']} → " in action["hosts"][0]["output"]

        async def new_pid() -> bool:
            now = await reported()
            return now is not None and now["pid"] != before["pid"]

        await eventually(new_pid)
        # A stop from outside drover is seen (by signal) and shown as drift.
        systemd.systemctl("stop", unit)

        async def drift() -> bool:
            placed = (await fleet.get("/api/v1/applications/web"))["services"][0]["hosts"]
            return bool(placed[0]["status"] == "stopped" and placed[0]["drift"])

        await eventually(drift)
