"""Two server processes on one bus and one PostgreSQL: both answer the API, one drives the
rollouts, and when it stops the other takes over; no action runs twice or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from drover.bus.embedded import EmbeddedNats
from drover.server import orchestrator
from drover.server.app import Server
from tests.conftest import eventually, starts
from tests.e2e.conftest import Journaled, shop_fleet
from tests.harness import Fleet, Running
from tests.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pair(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    journaled_service: Journaled,
    postgres_cluster: PostgresCluster,
) -> AsyncIterator[tuple[Fleet, Running]]:
    database = postgres_cluster.new_database()
    async with shop_fleet(nats_server, tmp_path, journaled_service, database) as fleet:
        peer = await fleet.start_peer(database)
        yield fleet, peer


def api(fleet: Fleet, server: Server) -> httpx.AsyncClient:
    assert server.http is not None
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http.port}",
        headers={"Authorization": f"Bearer {fleet.admin_token}"},
    )
    fleet.clients.append(client)
    return client


async def restart_through(client: httpx.AsyncClient) -> dict[str, object]:
    created = await client.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "web"}
    )
    assert created.status_code == 202, created.text
    action_id = created.json()["id"]
    seen: dict[str, object] = {}

    async def ended() -> bool:
        seen.update((await client.get(f"/api/v1/actions/{action_id}")).json())
        return seen["state"] != "running"

    await eventually(ended, timeout=30)
    return seen


async def with_agent(fleet: Fleet, peer: Running) -> tuple[Server, Server, Path]:
    """Agent h1 started and its web service up, one server holding the lease: (the one that
    drives, the other, web's journal)."""
    assert fleet.server is not None and peer.server is not None
    first, second = fleet.server, peer.server
    await fleet.start_agent("h1")
    web = fleet.tmp / "web.journal"
    await eventually(lambda: len(starts(web)) == 1)
    await eventually(lambda: first.lease.held.is_set() != second.lease.held.is_set())
    return (first, second, web) if first.lease.held.is_set() else (second, first, web)


async def test_one_drives_the_other_takes_over_and_nothing_runs_twice(
    pair: tuple[Fleet, Running],
) -> None:
    fleet, peer = pair
    driver, other, web = await with_agent(fleet, peer)

    # Asked of the server that does not drive: it runs once, seen alike from both.
    action = await restart_through(api(fleet, other))
    assert action["state"] == "succeeded"
    again = (await api(fleet, driver).get(f"/api/v1/actions/{action['id']}")).json()
    assert again["state"] == "succeeded"
    await eventually(lambda: len(starts(web)) == 2)

    # The driver stops; the other takes over at its next try and runs the next action.
    await (peer if driver is peer.server else fleet.running[0]).halt()
    await eventually(other.lease.held.is_set, timeout=10)
    action = await restart_through(api(fleet, other))
    assert action["state"] == "succeeded"
    await eventually(lambda: len(starts(web)) == 3)
    assert len(starts(web)) == 3  # each restart once: two actions, two new processes


@pytest.fixture
def rare_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver looks at the rollouts by itself only every 10 minutes: whatever is sent
    sooner was sent because it was woken."""
    monkeypatch.setattr(orchestrator, "LOOK_EVERY", 600.0)


async def test_what_the_other_server_takes_wakes_the_driver_at_once(
    rare_looks: None, pair: tuple[Fleet, Running]
) -> None:
    fleet, peer = pair
    _, other, web = await with_agent(fleet, peer)
    for _ in range(3):  # each within seconds, never after a 10-minute look
        action = await restart_through(api(fleet, other))
        assert action["state"] == "succeeded"
    assert len(starts(web)) == 4
