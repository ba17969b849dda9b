"""Rollouts across many real agents: batches, the health gate, the failure threshold, cancel and
the dry run, all through the API, against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.e2e.test_discovery import drover_cli
from tests.harness import Fleet, fleet_of

HOSTS = [f"h{n:02d}" for n in range(1, 21)]
OFFLINE = "h08"  # named in config, never started: it cannot answer
CONFIG = {
    "groups.yaml": "groups:\n  all: {hosts: ['*']}\n  canary: {hosts: ['h01', 'h02']}\n",
    "hosts.yaml": "hosts:\n"
    + "".join(f"  {h}: {{labels: {{dc: {'zrh' if int(h[1:]) % 2 else 'gva'}}}}}\n" for h in HOSTS),
    "shop.yaml": (
        "applications:\n  shop:\n    groups: [all]\n    services:\n"
        "      web: {command: [sleep, '3600'], stop_timeout: 2}\n"
    ),
}


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server(answer_grace=timedelta(seconds=1))
        yield running


async def service_pids(fleet: Fleet) -> dict[str, int]:
    """Host → the pid of its running service, for every host that reports one."""
    return {
        h["host"]: s["pid"]
        for h in await fleet.get("/api/v1/hosts")
        for s in h["services"]
        if s["status"] == "running" and s["pid"]
    }


async def start_agents(fleet: Fleet, hosts: list[str]) -> dict[str, int]:
    """Start agents on `hosts`; the pid of each one's service once it runs."""
    await asyncio.gather(*(fleet.start_agent(h) for h in hosts))

    async def all_running() -> bool:
        return set(hosts) <= set(await service_pids(fleet))

    await eventually(all_running, timeout=30)
    return await service_pids(fleet)


async def follow(fleet: Fleet, action_id: str, timeout: float = 40) -> dict[str, Any]:
    final: dict[str, Any] = {}

    async def over() -> bool:
        final.update(await fleet.get(f"/api/v1/actions/{action_id}"))
        # Every host answered, and the rollout driver has had its look and closed the record.
        return bool(final["state"] != "running" and final["rollout_state"] != "running")

    await eventually(over, timeout=timeout)
    return final


async def post(fleet: Fleet, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    assert fleet.http is not None
    response = await fleet.http.post(path, json=body)
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.slow
async def test_a_batched_health_gated_restart_stops_when_a_batch_fails(fleet: Fleet) -> None:
    before = await start_agents(fleet, [h for h in HOSTS if h != OFFLINE])
    strategy = {"batch_size": 5, "health_gate_s": 0.5, "host_timeout_s": 3}
    created = await post(
        fleet,
        "/api/v1/actions",
        {"kind": "restart", "application": "shop", "strategy": strategy},
        202,
    )
    final = await follow(fleet, created["id"])

    by_host = {h["host"]: h for h in final["hosts"]}
    assert final["rollout_state"] == "stopped" and final["state"] == "failed"
    assert [by_host[h]["batch"] for h in HOSTS] == [n // 5 for n in range(20)]
    first, second = HOSTS[:5], HOSTS[5:10]
    assert {by_host[h]["outcome"] for h in first} == {"succeeded"}
    assert by_host[OFFLINE]["outcome"] == "expired"
    assert {by_host[h]["outcome"] for h in second if h != OFFLINE} == {"succeeded"}
    assert {by_host[h]["outcome"] for h in HOSTS[10:]} == {"skipped"}
    assert all(by_host[h]["sent_at"] is None for h in HOSTS[10:])
    # the second batch went only after the first had answered and held its target for the gate
    answered = max(datetime.fromisoformat(by_host[h]["finished_at"]) for h in first)
    second_sent = min(datetime.fromisoformat(by_host[h]["sent_at"]) for h in second)
    assert second_sent >= answered + timedelta(seconds=0.5)
    # nothing reached the skipped hosts: their services still run with the same pid
    after = await service_pids(fleet)
    assert {h: after[h] for h in HOSTS[10:]} == {h: before[h] for h in HOSTS[10:]}
    assert all(after[h] != before[h] for h in first)


async def test_a_dry_run_shows_the_batches_of_the_selection_and_sends_nothing(
    fleet: Fleet,
) -> None:
    body = {
        "application": "shop",
        "labels": {"dc": "zrh"},
        "strategy": {"batch_percent": 50},
    }
    planned = await post(fleet, "/api/v1/actions/plan", body, 200)
    odd = [h for h in HOSTS if int(h[1:]) % 2]
    assert planned["batches"] == [odd[:5], odd[5:]]
    assert (await fleet.get("/api/v1/actions")) == []
    canary = await post(
        fleet, "/api/v1/actions/plan", {"application": "shop", "groups": ["canary"]}, 200
    )
    assert canary["batches"] == [["h01", "h02"]]
    nothing = await post(
        fleet, "/api/v1/actions/plan", {"application": "shop", "labels": {"dc": "nyc"}}, 422
    )
    assert "matches nothing" in nothing["detail"]
    both = await post(
        fleet,
        "/api/v1/actions/plan",
        {"application": "shop", "strategy": {"batch_size": 2, "batch_percent": 10}},
        422,
    )
    assert "batch_size" in str(both["detail"])


async def test_a_cancelled_rollout_skips_the_hosts_not_yet_sent(fleet: Fleet) -> None:
    hosts = ["h01", "h02", "h03"]
    await start_agents(fleet, hosts)
    strategy = {"batch_size": 1, "pause_s": 60}
    created = await post(
        fleet,
        "/api/v1/actions",
        {"kind": "restart", "application": "shop", "hosts": hosts, "strategy": strategy},
        202,
    )

    async def first_done() -> bool:
        action = await fleet.get(f"/api/v1/actions/{created['id']}")
        return any(h["outcome"] == "succeeded" for h in action["hosts"])

    await eventually(first_done)
    cancelled = await post(fleet, f"/api/v1/actions/{created['id']}/cancel", {}, 200)
    assert cancelled["id"] == created["id"]
    final = await follow(fleet, created["id"])
    assert final["rollout_state"] == "cancelled"
    assert [h["outcome"] for h in final["hosts"]] == ["succeeded", "skipped", "skipped"]
    again = await post(fleet, f"/api/v1/actions/{created['id']}/cancel", {}, 409)
    assert "no longer running" in again["detail"]
    missing = await post(fleet, "/api/v1/actions/nope/cancel", {}, 404)
    assert "no action 'nope'" in missing["detail"]


async def test_the_cli_plans_runs_in_batches_and_refuses_bad_strategies(fleet: Fleet) -> None:
    await start_agents(fleet, ["h01", "h02", "h03"])
    plan = await asyncio.to_thread(
        drover_cli,
        fleet,
        "action",
        "restart",
        "shop",
        "--labels",
        "dc=zrh",
        "--batch",
        "2",
        "--dry-run",
    )
    assert plan.returncode == 0, plan.stderr
    assert "dry run: restart shop" in plan.stdout and "h01, h03" in plan.stdout
    run = await asyncio.to_thread(
        drover_cli,
        fleet,
        "action",
        "restart",
        "shop",
        "--host",
        "h01",
        "--host",
        "h02",
        "--host",
        "h03",
        "--batch",
        "1",
        "--health-gate",
        "1s",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout and "batch" in run.stdout
    for args, phrase in (
        (("--batch", "lots"), "--batch 'lots': expected a number of hosts"),
        (("--labels", "dc"), "'dc' is not key=value"),
        (("--batch", "0"), "batch_size"),
        (("--pause", "soon"), "--pause"),
    ):
        bad = await asyncio.to_thread(drover_cli, fleet, "action", "restart", "shop", *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert phrase in bad.stderr, (args, bad.stderr)
