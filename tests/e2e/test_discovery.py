"""Discovery on the server: inventories written to the bus as an agent would, sorted into
applications, shown in the API, published as desired state, and reported when rules match
nothing. (The agent side, against a real systemd, is in tests/e2e/test_discovery_systemd.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.kv import KeyValue

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import DesiredState, HostRecord, UnitInfo, UnitInventory, encode
from tests.busauth import superuser_client
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of, write_tree

CONFIG = {
    "groups.yaml": "groups:\n  web:\n    hosts: ['web-*']\n",
    "shop.yaml": (
        "applications:\n"
        "  shop:\n"
        "    groups: [web]\n"
        "    discover:\n"
        "      - units: ['shop-*.service']\n"
        "      - properties: {X-Drover-Application: shop}\n"
        "        policy: enforce\n"
        "      - units: ['varnish.service']\n"
    ),
}
DROVER = str(Path(sys.executable).parent / "drover")
GONE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server()
        yield running


@pytest.fixture
async def inventory_kv(nats_server: EmbeddedNats) -> AsyncIterator[KeyValue]:
    nc = await superuser_client(nats_server)
    try:
        yield await nc.jetstream().key_value(subjects.INVENTORY_BUCKET)
    finally:
        await nc.close()


async def report(kv: KeyValue, host: str, *units: UnitInfo) -> None:
    inventory = UnitInventory(host=host, taken_at=datetime.now(UTC), units=list(units))
    await kv.put(subjects.inventory_key(host), encode(inventory))


WEB_01 = (
    UnitInfo(unit="shop-api.service", description="Shop API"),
    UnitInfo(unit="orders.service", properties={"X-Drover-Application": "shop"}),
    UnitInfo(unit="shop-old.service", vanished_since=GONE),
    UnitInfo(unit="cron.service", description="Regular background program processing daemon"),
)


async def units(fleet: Fleet, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    found: list[dict[str, Any]] = await fleet.get(f"/api/v1/units?{query}")
    return found


async def test_units_are_sorted_into_applications_and_the_rest_listed_unassigned(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    await report(inventory_kv, "web-01", *WEB_01)
    await eventually(lambda: units(fleet, host="web-01"))
    listed = {u["unit"]: u for u in await units(fleet, host="web-01")}
    assert {u: (v["application"], v["service"], v["assigned_by"]) for u, v in listed.items()} == {
        "shop-api.service": ("shop", "shop-api", "discover[0]"),
        "orders.service": ("shop", "orders", "discover[1]"),
        "shop-old.service": ("shop", "shop-old", "discover[0]"),
        "cron.service": (None, None, ""),
    }
    assert [u["unit"] for u in await units(fleet, state="unassigned")] == ["cron.service"]
    vanished = await units(fleet, state="vanished")
    assert [(u["unit"], u["vanished_since"]) for u in vanished] == [
        ("shop-old.service", "2026-11-20T08:00:00Z")
    ]
    assert sorted(u["unit"] for u in await units(fleet, state="assigned")) == [
        "orders.service",
        "shop-api.service",
    ]


async def test_claimed_units_are_published_as_the_hosts_desired_state(
    fleet: Fleet, inventory_kv: KeyValue, nats_server: EmbeddedNats
) -> None:
    await report(inventory_kv, "web-01", *WEB_01)
    nc = await superuser_client(nats_server)
    try:
        # desired state is written for the hosts the fleet knows: this one says it is alive
        now = datetime.now(UTC)
        record = HostRecord(
            host="web-01",
            hostname="web-01",
            agent_version="test",
            started_at=now,
            heartbeat_at=now,
            heartbeat_interval=10,
        )
        state_kv = await nc.jetstream().key_value(subjects.STATE_BUCKET)
        await state_kv.put(subjects.host_key("web-01"), encode(record))
        desired_kv = await nc.jetstream().key_value(subjects.DESIRED_BUCKET)

        async def desired() -> list[tuple[str, str | None, str]]:
            try:
                entry = await desired_kv.get(subjects.desired_key("web-01"))
            except nats.js.errors.KeyNotFoundError:
                return []
            assert entry.value is not None
            state = DesiredState.model_validate_json(entry.value)
            return [(s.service, s.unit, s.policy.value) for s in state.services]

        # the vanished unit is not asked for: there is nothing to watch
        await eventually(
            lambda: _equal(
                desired(),
                [
                    ("shop-api", "shop-api.service", "observe"),
                    ("orders", "orders.service", "enforce"),
                ],
            )
        )
    finally:
        await nc.close()


async def _equal(got: Any, expected: list[Any]) -> bool:
    return sorted(await got) == sorted(expected)


async def test_a_vanished_unit_shows_as_vanished_in_its_application(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    await report(inventory_kv, "web-01", *WEB_01)

    async def old() -> dict[str, Any] | None:
        app = await fleet.get("/api/v1/applications/shop")
        return next((s for s in app["services"] if s["name"] == "shop-old"), None)

    await eventually(old)
    service = await old()
    assert service is not None and service["discovered"] and service["provider"] == "systemd"
    [place] = service["hosts"]
    assert (place["host"], place["unit"], place["status"], place["drift"]) == (
        "web-01",
        "shop-old.service",
        "vanished",
        True,
    )


async def test_a_rule_that_matches_nothing_is_reported_at_its_place(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    await report(inventory_kv, "web-01", *WEB_01)
    await eventually(lambda: units(fleet, host="web-01"))
    config = await fleet.get("/api/v1/config")
    assert config["discovery_problems"] == [
        {
            "file": "shop.yaml",
            "line": 8,
            "column": 9,
            "message": "discovery rule matches no unit on the 1 host(s) it looks on",
        }
    ]
    await report(inventory_kv, "web-02", UnitInfo(unit="varnish.service"))

    async def problems() -> list[Any]:
        return list((await fleet.get("/api/v1/config"))["discovery_problems"])

    await eventually(lambda: _equal(problems(), []))


async def test_two_applications_claiming_one_unit_is_reported_and_the_first_keeps_it(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    assert fleet.server is not None
    ops = "applications:\n  ops:\n    hosts: ['*']\n    discover:\n      - units: ['*']\n"
    write_tree(fleet.config_dir, {"ops.yaml": ops})
    await report(
        inventory_kv, "web-01", UnitInfo(unit="shop-api.service"), UnitInfo(unit="varnish.service")
    )

    def ops_active() -> bool:
        active = fleet.server.config.active if fleet.server else None
        return active is not None and "ops" in active.applications

    await eventually(ops_active)

    async def problems() -> list[str]:
        return [p["message"] for p in (await fleet.get("/api/v1/config"))["discovery_problems"]]

    await eventually(lambda: _has(problems(), "claimed by application ops already"))
    owners = {u["unit"]: u["application"] for u in await units(fleet, host="web-01")}
    assert owners == {"shop-api.service": "ops", "varnish.service": "ops"}


async def _has(got: Any, phrase: str) -> bool:
    return any(phrase in message for message in await got)


async def test_actions_and_overrides_reach_discovered_services(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    assert fleet.http is not None
    await report(inventory_kv, "web-01", *WEB_01)
    await report(inventory_kv, "web-02", UnitInfo(unit="varnish.service"))
    await eventually(lambda: units(fleet, host="web-02"))
    response = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "varnish"}
    )
    assert response.status_code == 202, response.text
    assert [h["host"] for h in response.json()["hosts"]] == ["web-02"]
    whole = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop"}
    )
    assert whole.status_code == 202, whole.text
    assert whole.json()["services"] == []
    assert [h["host"] for h in whole.json()["hosts"]] == ["web-01", "web-02"]
    gone = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "shop-old"}
    )
    assert gone.status_code == 404 and "no service 'shop-old'" in gone.text
    override = await fleet.http.post(
        "/api/v1/overrides",
        json={"application": "shop", "service": "varnish", "status": "stopped", "reason": "test"},
    )
    assert override.status_code == 201, override.text


async def test_a_malformed_or_misaddressed_inventory_is_dropped(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    assert fleet.server is not None
    await inventory_kv.put("web-01", b"not json")
    await report(inventory_kv, "web-01", *WEB_01)
    misaddressed = UnitInventory(host="web-09", taken_at=datetime.now(UTC), units=[])
    await inventory_kv.put("web-02", encode(misaddressed))
    await eventually(
        lambda: (
            fleet.server is not None and fleet.server.counters.get("server.malformed_messages") >= 2
        )
    )
    await eventually(lambda: units(fleet, host="web-01"))
    assert fleet.server.discovery.hosts() == ["web-01"]


def drover_cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    assert fleet.server is not None and fleet.server.http is not None
    url = f"http://127.0.0.1:{fleet.server.http.port}"
    env = {**os.environ, "COLUMNS": "200", "DROVER_TOKEN": fleet.admin_token}
    return subprocess.run(
        [DROVER, *args, "--server", url], capture_output=True, text=True, timeout=30, env=env
    )


async def test_the_cli_lists_units_and_says_what_is_wrong_with_the_rules(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    await report(inventory_kv, "web-01", *WEB_01)
    await eventually(lambda: units(fleet, host="web-01"))

    listed = await asyncio.to_thread(drover_cli, fleet, "units", "--state", "unassigned")
    assert listed.returncode == 0, listed.stderr
    assert "cron.service" in listed.stdout and "unassigned" in listed.stdout
    assert "shop-api.service" not in listed.stdout
    everything = await asyncio.to_thread(drover_cli, fleet, "units", "--host", "web-01", "--json")
    assert {u["unit"] for u in json.loads(everything.stdout)} == {u.unit for u in WEB_01}

    status = await asyncio.to_thread(drover_cli, fleet, "config", "status")
    assert status.returncode == 1
    assert "shop.yaml:8:9: discovery rule matches no unit" in status.stdout
    assert "1 problem(s)" in status.stderr
    bad = await asyncio.to_thread(drover_cli, fleet, "units", "--state", "lost")
    assert bad.returncode == 2 and "lost" in bad.stderr


async def test_one_unit_under_rules_with_different_targets_shows_each_hosts_target(
    fleet: Fleet, inventory_kv: KeyValue
) -> None:
    jobs = (
        "applications:\n  jobs:\n    discover:\n"
        "      - {units: [worker.service], hosts: ['a-*'], target: running}\n"
        "      - {units: [worker.service], hosts: ['b-*'], target: stopped}\n"
    )
    write_tree(fleet.config_dir, {"jobs.yaml": jobs})
    await report(inventory_kv, "a-1", UnitInfo(unit="worker.service"))
    await report(inventory_kv, "b-1", UnitInfo(unit="worker.service"))

    async def targets() -> dict[str, str]:
        response = await fleet.http.get("/api/v1/applications/jobs") if fleet.http else None
        if response is None or response.status_code != 200:
            return {}
        services = response.json()["services"]  # none until the inventories are sorted
        return {p["host"]: p["target"] for s in services for p in s["hosts"]}

    async def both() -> bool:
        return await targets() == {"a-1": "running", "b-1": "stopped"}

    await eventually(both)


async def test_units_of_a_host_nobody_knows_is_a_404(fleet: Fleet) -> None:
    assert fleet.http is not None
    response = await fleet.http.get("/api/v1/units?host=nope")
    assert response.status_code == 404 and "no host 'nope'" in response.text
    bad = await fleet.http.get("/api/v1/units?host=no.dots")
    assert bad.status_code == 422
