"""Two servers behind a load balancer, each stopped (SIGTERM's path) and started again in turn
while clients keep reading and requesting actions over kept-alive connections: not one request
fails that the other server could serve, and every action asked for runs exactly once.

A stopping server drains: its /healthz answers 503 at once, so the balancer sends new
connections to the other; for `drain_grace` it still serves, closing each connection after its
answer (`Connection: close`), so that clients come back through the balancer; then it stops
listening, finishes the requests it has, and exits. Its stop ended every time only once no
cancel of its loops could be lost (drover.ops.cancels): before, about one stop in seven hung.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats, free_port
from drover.server.app import Server
from tests.chaos.balancer import Balancer
from tests.chaos.conftest import cycles, journaled_command, report
from tests.chaos.tally import recorded_actions, tally
from tests.conftest import eventually
from tests.harness import Fleet, Running, fleet_of
from tests.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

DRAIN_GRACE = 1.0  # four of the balancer's health checks
STUCK_AFTER = 30.0  # seconds in which no action ended, once the clients have stopped


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
            clients_stopped = asyncio.get_running_loop().time()
            actions = await settled(fleet, servers[1].server)
            backlog_s = asyncio.get_running_loop().time() - clients_stopped
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
        backlog_done_after_s=round(backlog_s, 1),
        **counted.counts(),
    )
    assert clients.failed == []
    assert set(clients.accepted) <= {a["id"] for a in actions}
    counted.assert_nothing_lost_or_run_twice()
    assert counted.outcomes["succeeded"] == len(actions) > 0


async def settled(fleet: Fleet, peer: Server | None) -> list[dict[str, Any]]:
    """Every action, once none is running. The one agent runs them one after another, and the
    clients may have asked faster than it runs them: it may take a while, but a failure only
    when none ended for STUCK_AFTER seconds, with what is running and who drives."""
    assert fleet.http is not None
    clock = asyncio.get_running_loop()
    last_progress, running_before = clock.time(), None
    while True:
        found = await recorded_actions(fleet.http, "jobs")
        running = [a for a in found if a["state"] == "running"]
        if not running:
            return found
        if running_before is None or len(running) < running_before:
            last_progress, running_before = clock.time(), len(running)
        if clock.time() - last_progress > STUCK_AFTER:
            break
        await asyncio.sleep(0.2)
    drives = [s is not None and s.lease.held.is_set() for s in (fleet.server, peer)]
    agent = fleet.agents["h1"]
    consumer = await agent.bus.js.consumer_info(
        subjects.ACTIONS_STREAM, subjects.agent_actions_consumer("h1")
    )
    pytest.fail(
        f"{len(running)} running, none ended for {STUCK_AFTER}s; lease held [first, peer]: "
        f"{drives}; agent: {agent.executor.executions} run, now {agent.executor._running}; "
        f"its consumer: {consumer}; {running[:2]}"
    )
