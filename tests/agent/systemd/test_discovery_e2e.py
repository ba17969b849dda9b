"""Discovery end to end with a real systemd: the agent lists the units, the server sorts them
into applications by name and by a drop-in's X-Drover-Application, actions reach them, and a
unit whose file is removed is shown vanished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import Fleet, fleet_of
from tests.systemd_namespace import SystemdNamespace

pytestmark = pytest.mark.systemd

SLEEPER = "[Unit]\nDescription={}\n[Service]\nType=simple\nExecStart=/bin/sleep infinity\n"
CONFIG = {
    "apps.yaml": (
        "applications:\n"
        "  shop:\n"
        "    hosts: [h1]\n"
        "    discover:\n"
        "      - units: ['disc-shop-*.service']\n"
        "      - properties: {X-Drover-Application: shop}\n"
        "        policy: enforce\n"
    )
}


async def service(fleet: Fleet, name: str) -> dict[str, Any] | None:
    app = await fleet.get("/api/v1/applications/shop")
    found = next((s for s in app["services"] if s["name"] == name), None)
    return found["hosts"][0] if found and found["hosts"] else None


async def status_of(fleet: Fleet, name: str, status: str) -> bool:
    place = await service(fleet, name)
    return place is not None and place["status"] == status


async def units(fleet: Fleet, state: str) -> set[str]:
    return {u["unit"] for u in await fleet.get(f"/api/v1/units?host=h1&state={state}")}


async def test_units_found_by_name_and_drop_in_become_services_and_vanish_when_removed(
    nats_server: EmbeddedNats, tmp_path: Path, systemd: SystemdNamespace
) -> None:
    systemd.write_units(
        {
            "disc-shop-api.service": SLEEPER.format("shop API"),
            "disc-orders.service": SLEEPER.format("orders"),
            "disc-other.service": SLEEPER.format("not the shop's"),
            "disc-shop-w@.service": SLEEPER.format("shop worker %i"),
            "disc-login@.service": SLEEPER.format("not the shop's either"),
        }
    )
    drop_in = systemd.root / "run/systemd/system/disc-orders.service.d"
    drop_in.mkdir(parents=True, exist_ok=True)
    (drop_in / "drover.conf").write_text("[Unit]\nX-Drover-Application=shop\n")
    systemd.systemctl("daemon-reload")
    # instances: no unit file of their own, listed only while loaded
    systemd.systemctl("start", "disc-shop-w@1.service", "disc-login@7.service")
    async with fleet_of(nats_server, tmp_path, CONFIG) as fleet:
        await fleet.start_server()
        await fleet.start_agent("h1", systemd_bus=systemd.bus_address, systemd_root=systemd.root)

        # by name, observed: left stopped, shown as drift; by drop-in, enforced: started
        await eventually(lambda: status_of(fleet, "disc-shop-api", "stopped"))
        await eventually(lambda: status_of(fleet, "disc-orders", "running"))
        api = await service(fleet, "disc-shop-api")
        assert api is not None and api["drift"] and api["convergence"] == "observed"
        assert api["unit"] == "disc-shop-api.service"
        assert "disc-other.service" in await units(fleet, "unassigned")

        action = await run_action(
            fleet, {"kind": "start", "application": "shop", "service": "disc-shop-api"}
        )
        assert action["state"] == "succeeded", action
        await eventually(lambda: status_of(fleet, "disc-shop-api", "running"))

        await eventually(lambda: status_of(fleet, "disc-shop-w-1-18a732", "running"))
        systemd.systemctl("stop", "disc-shop-api.service", "disc-other.service")
        (systemd.root / "run/systemd/system/disc-shop-api.service").unlink()
        (systemd.root / "run/systemd/system/disc-other.service").unlink()
        systemd.systemctl("daemon-reload")  # no poll: the reload's signal tells the agent

        await eventually(lambda: status_of(fleet, "disc-shop-api", "vanished"))
        vanished = await units(fleet, "vanished")
        assert {"disc-shop-api.service", "disc-other.service"} <= vanished

        # An instance that goes is simply gone, unless desired state names it: then vanished.
        systemd.systemctl("stop", "disc-shop-w@1.service", "disc-login@7.service")

        async def instances_settled() -> bool:
            listed = await units(fleet, "vanished") | await units(fleet, "unassigned")
            return "disc-shop-w@1.service" in listed and "disc-login@7.service" not in listed

        await eventually(instances_settled)
        assert "disc-shop-w@1.service" in await units(fleet, "vanished")
        # the rest of the host is untouched
        assert await status_of(fleet, "disc-orders", "running")
    systemd.systemctl("stop", "disc-orders.service", check=False)
