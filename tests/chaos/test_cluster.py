"""The scale-out bus under faults: three clustered nats-servers, every stream and bucket kept on
all three (R3), a drover server given every node's URL and agents given them by enrollment,
while a continuous stream of fanned-out commands runs.

- One node killed with SIGKILL under load, later restarted on its own store: nothing the API
  accepted is lost (each action ends with a result on every host, each host's execution is in
  the command's own fsynced journal exactly once), nothing runs twice, and work goes on while
  the node is down.
- Patch night: the nodes restarted one by one, then all three stopped for longer than the
  clients' reconnect backoff (nats-py's own default budget in full mode) and started again:
  processing resumes within 30 s of the cluster being back, with no drover process restarted,
  and every action is accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.agent import executor
from drover.agent.app import Agent
from drover.bus import subjects, topology
from drover.server.app import Server
from tests.chaos.cluster import NatsCluster, nats_cluster
from tests.chaos.conftest import FULL, cycles, executions, journaled_command, report
from tests.chaos.tally import figure, tally
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

HOSTS = ["h1", "h2", "h3"]
REPLICAS = 3
STREAMS = [
    subjects.ACTIONS_STREAM,
    subjects.RESULTS_STREAM,
    subjects.EVENTS_STREAM,
    subjects.OUTPUT_STREAM,
    subjects.KV_STREAM_PREFIX + subjects.STATE_BUCKET,
    subjects.KV_STREAM_PREFIX + subjects.DESIRED_BUCKET,
    subjects.KV_STREAM_PREFIX + subjects.LEASES_BUCKET,
]
RESUME_BOUND = 30.0  # seconds from the cluster being back to work being done again
QUICK_ACK_WAIT = executor.PROGRESS_EVERY + 5.0
# How long a patch night keeps every node down: past the clients' reconnect backoff cap
# (BusSettings.reconnect_cap, 8 s) in `make test`; in `make chaos` also past the budget nats-py
# has by default (60 attempts 2 s apart), which drover's clients do not have: they never stop.
OUTAGES = [15.0, 60.0, 130.0] if FULL else [10.0]
FINAL = "succeeded"


def config(tmp: Path) -> dict[str, str]:
    argv, _ = journaled_command(tmp, "work", 0.1)
    quoted = ", ".join(f"'{a}'" for a in argv)
    return {
        "hosts.yaml": "hosts:\n" + "".join(f"  {h}: {{}}\n" for h in HOSTS),
        "jobs.yaml": (
            "applications:\n  jobs:\n    hosts: ['h*']\n    commands:\n"
            f"      work: {{argv: [{quoted}], timeout: 60}}\n"
        ),
    }


@pytest.fixture
async def clustered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[NatsCluster, Fleet]]:
    """The cluster, a server on all of its nodes making R3 streams, an agent per host."""
    # An agent that ran an action but could not send its result because its link broke (every
    # node stopped, or its own killed) sends it when JetStream hands it the action again, after
    # the action consumer's ack wait. In `make test` that wait is cut from a minute to
    # QUICK_ACK_WAIT, so that such a late result fits a short run; `make chaos` waits it out.
    if not FULL:
        monkeypatch.setattr(topology, "ACTION_ACK_WAIT", QUICK_ACK_WAIT)
    caplog.set_level(logging.INFO, logger=executor.__name__)  # to count ledger answers
    async with (
        nats_cluster(tmp_path) as cluster,
        fleet_of(
            cluster.nodes[0],
            tmp_path,
            config(tmp_path),
            bus_urls=cluster.urls,
            bus_replicas=REPLICAS,
        ) as fleet,
    ):
        await fleet.start_server()
        await asyncio.gather(*(fleet.start_agent(host) for host in HOSTS))
        await eventually(lambda: cluster.healthy(STREAMS), 30)
        yield cluster, fleet


class Stream:
    """A fanned-out command to every host, asked for every `every` seconds for as long as it
    runs, through the faults. The server and its database stay up, so every request is
    answered: one it accepted is an action that must end with a result on every host."""

    def __init__(self, http: httpx.AsyncClient, every: float) -> None:
        self.http = http
        self.every = every
        self.accepted: list[str] = []
        self.refused = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop asking, after the request under way: one cut off in flight may have become
        an action that nobody knows of."""
        assert self._task is not None
        self._stop.set()
        await self._task

    async def ask(self) -> str | None:
        answer = await self.http.post(
            "/api/v1/actions", json={"kind": "command", "application": "jobs", "command": "work"}
        )
        if answer.status_code != 202:
            self.refused += 1
            return None
        self.accepted.append(str(answer.json()["id"]))
        return self.accepted[-1]

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.ask()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)


def ran_everywhere(journal: Path, actions: Iterable[str]) -> bool:
    """Whether each of `actions` has ended on every host, by the journal."""
    _, ended = executions(journal)
    return all(ended[action, host] for action in actions for host in HOSTS)


def not_begun(journal: Path, actions: Iterable[str]) -> list[str]:
    """Those of `actions` that have begun on no host yet, by the journal."""
    began, _ = executions(journal)
    return [action for action in actions if not any(began[action, host] for host in HOSTS)]


async def work_goes_on(stream: Stream, journal: Path, since: int) -> None:
    """Three actions asked for after the `since`th run on every host."""
    await eventually(lambda: len(stream.accepted) >= since + 3, 10)
    await eventually(lambda: ran_everywhere(journal, stream.accepted[since : since + 3]), 30)


async def is_over(http: httpx.AsyncClient, action_id: str, timeout: float) -> None:
    await eventually(lambda: finished(http, action_id), timeout, interval=0.25)


async def finished(http: httpx.AsyncClient, action_id: str) -> dict[str, Any] | None:
    """The action's record once every host has answered and the rollout is closed."""
    response = await http.get(f"/api/v1/actions/{action_id}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    over = found["state"] != "running" and found["rollout_state"] != "running"
    return found if over else None


async def settle(fleet: Fleet, accepted: list[str], timeout: float) -> list[dict[str, Any]]:
    """Every accepted action's record, once all of them are over; if some are not within
    `timeout`, fail with their records."""
    assert fleet.http is not None
    http = fleet.http
    records: dict[str, dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        for action_id in accepted:
            if action_id not in records and (record := await finished(http, action_id)):
                records[action_id] = record
        if len(records) == len(accepted):
            return [records[action_id] for action_id in accepted]
        await asyncio.sleep(0.25)
    unfinished = [
        (await http.get(f"/api/v1/actions/{action_id}")).json()
        for action_id in accepted
        if action_id not in records
    ]
    pytest.fail(f"{len(unfinished)} actions not over within {timeout}s: {unfinished}")


def bus_figures(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> dict[str, float]:
    """Stalls found and reconnects made by the server and every agent, and the results an
    agent sent again from its ledger (the first did not get through: it was asked again)."""
    assert fleet.server is not None
    components: list[Server | Agent] = [fleet.server, *fleet.agents.values()]
    answered = [r for r in caplog.records if "answering from the ledger" in r.getMessage()]
    return {
        "stalls": sum(figure(c.metrics, "drover_consumer_stalls_total") for c in components),
        "reconnects": sum(c.counters.get("bus.reconnects") for c in components),
        "reopens": sum(c.counters.get("bus.reopens") for c in components),
        "results_sent_again": len(answered),
    }


def spread(cluster: NatsCluster, fleet: Fleet) -> list[int]:
    """How many agents are connected to each node (they pick one of their URLs at random)."""
    ports = [
        agent.bus.nc.connected_url.port if agent.bus.nc.connected_url else None
        for agent in fleet.agents.values()
    ]
    return [ports.count(node.port) for node in cluster.nodes]


def settle_within() -> float:
    """How long every action may take to be over once the faults end: a result that did not
    get through comes again after the action's ack wait."""
    return topology.ACTION_ACK_WAIT + 20.0


async def actions_leader(cluster: NatsCluster) -> int:
    """The node that leads the actions stream: killing it forces a leader election."""
    async with cluster.client() as nc:
        info = await nc.jetstream(timeout=5).stream_info(subjects.ACTIONS_STREAM)
    assert info.cluster is not None
    names = [f"{node.cluster.name}-{node.cluster.port}" for node in cluster.nodes if node.cluster]
    return names.index(info.cluster.leader or "")


@pytest.mark.timeout(cycles(90, 900))
async def test_a_node_killed_under_load_loses_no_accepted_action_and_runs_none_twice(
    clustered: tuple[NatsCluster, Fleet], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, fleet = clustered
    assert fleet.http is not None
    journal = tmp_path / "work.journal"
    kills = cycles(1, 5)
    agents_per_node = spread(cluster, fleet)
    going_on: list[float] = []  # from the kill to work asked for since done everywhere
    rejoined: list[float] = []  # from the restart to every replica current again
    async with Stream(fleet.http, every=0.5) as stream:
        for _ in range(kills):
            await eventually(lambda: len(stream.accepted) >= 3, 10)
            victim = await actions_leader(cluster)
            await cluster.kill(victim)
            killed = time.monotonic()
            # Work goes on with one node down: actions asked for after the kill run everywhere.
            await work_goes_on(stream, journal, len(stream.accepted))
            going_on.append(time.monotonic() - killed)
            restarted = time.monotonic()
            await cluster.restart(victim)
            await eventually(lambda: cluster.healthy(STREAMS), 30)
            rejoined.append(time.monotonic() - restarted)
    records = await settle(fleet, stream.accepted, settle_within())

    counted = tally(records, journal)
    outcomes = {host["outcome"] for record in records for host in record["hosts"]}
    report(
        "cluster: a nats-server node killed under load (R3)",
        cycles=kills,
        agents_per_node=agents_per_node,
        work_done_after_kill_s=[round(t, 1) for t in going_on],
        node_current_again_s=[round(t, 1) for t in rejoined],
        refused=stream.refused,
        **counted.counts(),
        **bus_figures(fleet, caplog),
    )
    counted.assert_nothing_lost_or_run_twice()
    assert outcomes == {FINAL}
    assert counted.runs == counted.executions == len(stream.accepted) * len(HOSTS)


@pytest.mark.timeout(cycles(90, 1500))
async def test_after_a_patch_night_processing_resumes_without_restarting_drover(
    clustered: tuple[NatsCluster, Fleet], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, fleet = clustered
    assert fleet.http is not None and fleet.server is not None
    http = fleet.http
    journal = tmp_path / "work.journal"
    drover: list[Server | Agent] = [fleet.server, *fleet.agents.values()]
    resumed: list[float] = []  # from the cluster back to an action sent since done everywhere
    drained: list[float] = []  # from the cluster back to everything asked before done
    # Slower than the agents can run them: what waits after the outage is drained in seconds.
    async with Stream(http, every=1.0) as stream:
        for outage in OUTAGES:
            for index in range(len(cluster.nodes)):  # the rolling restart
                await cluster.restart(index)
                await eventually(lambda: cluster.healthy(STREAMS), 30)
            await cluster.stop_all()
            await eventually(lambda: not any(c.bus.is_connected for c in drover), 10)
            await asyncio.sleep(outage)  # the outage itself: its length is the scenario
            await cluster.start_all()
            back = time.monotonic()
            waiting = list(stream.accepted)  # asked for before and during the outage
            # Asked for while the bus was down, so sent to the agents only now.
            await is_over(http, not_begun(journal, waiting)[0], RESUME_BOUND)
            resumed.append(time.monotonic() - back)
            await eventually(partial(ran_everywhere, journal, waiting), 60)
            drained.append(time.monotonic() - back)
    records = await settle(fleet, stream.accepted, settle_within())
    assert not any(running.task.done() for running in fleet.running)  # none restarted

    counted = tally(records, journal)
    outcomes = {host["outcome"] for record in records for host in record["hosts"]}
    report(
        "cluster: patch night (rolling restart, then every node down and up)",
        cycles=len(OUTAGES),
        outages_s=OUTAGES,
        time_to_resume_s=[round(t, 1) for t in resumed],
        time_to_drain_backlog_s=[round(t, 1) for t in drained],
        refused=stream.refused,
        **counted.counts(),
        **bus_figures(fleet, caplog),
    )
    counted.assert_nothing_lost_or_run_twice()
    assert outcomes == {FINAL}
    assert counted.runs == counted.executions == len(stream.accepted) * len(HOSTS)
    assert max(resumed) < RESUME_BOUND
