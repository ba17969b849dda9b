"""Two servers behind a load balancer, each stopped (SIGTERM's path) and started again in turn
while clients keep reading and requesting actions over kept-alive connections: not one request
fails that the other server could serve, and every action asked for runs exactly once.

A stopping server drains: its /healthz answers 503 at once, so the balancer sends new
connections to the other; for `drain_grace` it still serves, closing each connection after its
answer (`Connection: close`), so that clients come back through the balancer; then it stops
listening, finishes the requests it has, and exits."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus.embedded import EmbeddedNats, free_port
from tests.chaos.balancer import Balancer
from tests.chaos.conftest import FULL, cycles, journaled_command, report
from tests.chaos.tally import recorded_actions, tally
from tests.conftest import eventually
from tests.harness import Fleet, Running, fleet_of
from tests.postgres import PostgresCluster

pytestmark = [
    pytest.mark.postgres,
    # A stop that never ends (docs/reliability.md, gaps) shows in about one run in seven of
    # even a single cycle: until it is found, only `make chaos` runs this, and fails with it.
    pytest.mark.skipif(not FULL, reason="a server's stop can hang here: see reliability gaps"),
]

DRAIN_GRACE = 1.0  # four of the balancer's health checks


def config(tmp: Path) -> dict[str, str]:
    argv, _ = journaled_command(tmp, "work", 0.1)
    quoted = ", ".join(f"'{a}'" for a in argv)
    return {
        "hosts.yaml": "hosts:\n  h1: {}\n",
        "jobs.yaml": (
            "applications:\n  jobs:\n    hosts: [h1]\n    commands:\n"
            f"      work: {{argv: [{quoted}], timeout: 60}}\n"
        ),
    }


class Clients:
    """`count` clients, each on its own kept-alive connection through the balancer, asking
    again and again: the action list, the hosts, and now and then a new action."""

    def __init__(self, base_url: str, token: str, count: int = 4) -> None:
        self._http = [
            httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for _ in range(count)
        ]
        self.answered: Counter[int] = Counter()
        self.failed: list[str] = []
        self.accepted: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Clients:
        self._tasks = [asyncio.create_task(self._ask(http)) for http in self._http]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for http in self._http:
            await http.aclose()

    async def _ask(self, http: httpx.AsyncClient) -> None:
        turn = 0
        while True:
            turn += 1
            try:
                if turn % 5 == 0:
                    answer = await http.post(
                        "/api/v1/actions",
                        json={"kind": "command", "application": "jobs", "command": "work"},
                    )
                    if answer.status_code == 202:
                        self.accepted.append(answer.json()["id"])
                else:
                    answer = await http.get("/api/v1/actions" if turn % 2 else "/api/v1/hosts")
            except httpx.TransportError as err:
                self.failed.append(repr(err))
                continue
            self.answered[answer.status_code] += 1
            if answer.status_code >= 500:
                self.failed.append(f"{answer.status_code} {answer.text[:200]}")
            await asyncio.sleep(0.02)


@pytest.mark.timeout(cycles(85, 900))
async def test_servers_restarted_in_turn_behind_a_balancer_drop_no_request(
    nats_server: EmbeddedNats, tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    database = postgres_cluster.new_database()
    ports = [free_port(), free_port()]
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as fleet:

        async def start(which: int) -> Running:
            if which == 0:
                await fleet.start_server(
                    database_url=database, port=ports[0], drain_grace=DRAIN_GRACE
                )
                return fleet.running[-1]
            return await fleet.start_peer(database, port=ports[1], drain_grace=DRAIN_GRACE)

        servers = [await start(0), await start(1)]
        await fleet.start_agent("h1")
        balancer = Balancer(ports)
        await balancer.start()
        rounds = cycles(1, 15)
        try:
            async with Clients(f"http://127.0.0.1:{balancer.port}", fleet.admin_token) as clients:
                for _ in range(rounds):
                    for which in (0, 1):
                        await asyncio.sleep(1.0)
                        await servers[which].halt()  # what SIGTERM does
                        servers[which] = await start(which)
                        await eventually(lambda: ports[which] in balancer.healthy)  # noqa: B023
                await asyncio.sleep(1.0)
            actions = await settled(fleet)
        finally:
            await balancer.close()
    counted = tally(actions, tmp_path / "work.journal")
    report(
        "servers restarted in turn behind a balancer",
        cycles=rounds,
        restarts=2 * rounds,
        requests=sum(clients.answered.values()) + len(clients.failed),
        answered=dict(clients.answered),
        failed=len(clients.failed),
        **counted.counts(),
    )
    assert clients.failed == []
    assert set(clients.accepted) <= {a["id"] for a in actions}
    counted.assert_nothing_lost_or_run_twice()
    assert counted.outcomes["succeeded"] == len(actions) > 0


async def settled(fleet: Fleet) -> list[dict[str, Any]]:
    assert fleet.http is not None
    http = fleet.http
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = await recorded_actions(http, "jobs")
        return all(a["state"] != "running" for a in found)

    await eventually(done, timeout=30)
    return found
