"""Errors of every kind nats-py raises, thrown from inside the client into every fetch, KV watch,
publish and JetStream request the server and three agents make while command actions flow,
then stopped: no background loop of either has exited, every loop counted its failures, and
every action accepted meanwhile ended on every host, having run there exactly once — counted
in each host's own fsynced journal, not taken from drover's word.

The errors come from tests/chaos/faults.py, each class of its catalogues at least once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.agent.app import Agent
from drover.bus.embedded import EmbeddedNats
from drover.server.app import Server
from tests.chaos.conftest import FULL, cycles, executions, journaled_command, report
from tests.chaos.faults import Injector, error_classes
from tests.chaos.tally import figure
from tests.harness import Fleet, fleet_of

HOSTS = ["h1", "h2", "h3"]
RATE = 0.25  # of the calls through a patched method, while injecting
SUBMIT_EVERY = 1.0  # seconds between two actions asked of every host (each runs ~0.4 s)
# After the injection: an action delivered to a life of the loop that ended before it could
# hand it back (its nak failed too, or it came as the life ended) comes again once its ack wait
# (60 s, bus/topology.py) has passed and the loop's backoff (10 s at most) is over; in full
# mode, after minutes of failures, a lost lease (retaken once its entry ages out) may add to it.
SETTLE = cycles(70, 180)
# A fetch is made a few times a second while its loop is not backing off, and its catalogue is
# the longest: a slow machine may need this much more injecting before every class came up.
EXTRA_AT_MOST = 40


def config(tmp: Path) -> dict[str, str]:
    """Application `jobs` on every host, with a command that journals each run."""
    argv, _ = journaled_command(tmp, "note", 0.1)
    listed = ", ".join(f"'{item}'" for item in argv)
    hosts = "".join(f"  {host}: {{}}\n" for host in HOSTS)
    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": f"hosts:\n{hosts}",
        "jobs.yaml": (
            "applications:\n"
            "  jobs:\n"
            "    groups: [all]\n"
            "    commands:\n"
            f"      note:\n        argv: [{listed}]\n"
        ),
    }


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server()
        for host in HOSTS:
            agent = await running.start_agent(host)
            await asyncio.wait_for(agent.desired_known.wait(), 20)
        yield running


def drover_loops() -> list[asyncio.Task[Any]]:
    """The server's and the agents' background loops, as they name their tasks."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(("server.", "agent.")) and not task.done()
    ]


async def run_with_errors(
    fleet: Fleet, injector: Injector, seconds: float, raised_before: set[str]
) -> list[str]:
    """Ask for an action on every host every SUBMIT_EVERY seconds while errors are injected,
    for `seconds` and then on until every error class has been raised (with those in
    `raised_before`), for at most EXTRA_AT_MOST more; the ids of those accepted."""
    assert fleet.http is not None
    body = {"kind": "command", "application": "jobs", "command": "note", "hosts": HOSTS}
    accepted: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    wanted = error_classes()

    def more() -> bool:
        if loop.time() < end:
            return True
        missing = wanted - raised_before - set(injector.raised)
        return bool(missing) and loop.time() < end + EXTRA_AT_MOST

    injector.on = True
    try:
        while more():
            created = await fleet.http.post("/api/v1/actions", json=body)
            assert created.status_code == 202, created.text
            accepted.append(created.json()["id"])
            await asyncio.sleep(SUBMIT_EVERY)
    finally:
        injector.on = False
    return accepted


async def outcomes(
    fleet: Fleet, accepted: list[str], backlog: Counter[str]
) -> dict[tuple[str, str], str]:
    """(action, host) → outcome on the record, once every action is over or SETTLE has
    passed; `backlog` gets the runs not over at the first look, by host. The newest 500 come
    in one request; older ones one by one, until they are over."""
    found: dict[tuple[str, str], str] = {}
    over: set[str] = set()
    first = True
    deadline = asyncio.get_running_loop().time() + SETTLE
    while True:
        listed = await fleet.get("/api/v1/actions?application=jobs&limit=500")
        recent = {action["id"]: action for action in listed}
        for action_id in accepted:
            if action_id in over:
                continue
            action = recent.get(action_id) or await fleet.get(f"/api/v1/actions/{action_id}")
            for host in action["hosts"]:
                found[(action_id, host["host"])] = host["outcome"]
                if first and host["outcome"] in ("pending", "dispatched"):
                    backlog[host["host"]] += 1
            if action["state"] != "running":
                over.add(action_id)
        first = False
        if len(over) == len(accepted) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


@pytest.mark.timeout(cycles(90, 1800) + EXTRA_AT_MOST)
async def test_injected_client_errors_leave_every_loop_running_and_every_action_run_once(
    fleet: Fleet, tmp_path: Path
) -> None:
    assert fleet.server is not None
    components: list[Server | Agent] = [fleet.server, *fleet.agents.values()]
    loops = drover_loops()
    names = Counter(task.get_name() for task in loops)
    seeds = range(cycles(1, 4))
    seconds = cycles(10, 60)
    injectors = [Injector(seed=seed, rate=RATE) for seed in seeds]
    accepted: list[str] = []
    injection_began = asyncio.get_running_loop().time()
    raised: set[str] = set()
    for injector in injectors:
        with injector.installed():
            accepted += await run_with_errors(fleet, injector, seconds, raised)
        raised |= set(injector.raised)
    injection_ended = asyncio.get_running_loop().time()
    backlog: Counter[str] = Counter()  # runs not over when the injection ended
    found = await outcomes(fleet, accepted, backlog)
    settled_after = asyncio.get_running_loop().time() - injection_ended
    if FULL:  # deliveries lost with their subscriptions come again after their ack wait
        await asyncio.sleep(65)

    journal_began, journal_ended = executions(tmp_path / "note.journal")
    began = {(a, h): journal_began[a, h] for a in accepted for h in HOSTS}
    ended = {(a, h): journal_ended[a, h] for a in accepted for h in HOSTS}
    lost = {
        run: found.get(run) for run in began if began[run] == 0 or found.get(run) != "succeeded"
    }
    duplicated = [run for run in began if began[run] > 1]
    injected: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for injector in injectors:
        injected += injector.raised
        calls += injector.calls
    dead = [task.get_name() for task in loops if task.done()]
    loop_errors = {
        type(c).__name__ + ":" + name: count
        for c in components
        for name, count in c.counters.snapshot().items()
        if name.startswith("loop_errors.")
    }
    stalls = sum(figure(c.metrics, "drover_consumer_stalls_total") for c in components)
    report(
        "injected_errors",
        cycles=len(injectors),
        seconds_injecting=round(injection_ended - injection_began, 1),
        calls_intercepted=dict(calls),
        errors_injected=sum(injected.values()),
        errors_by_class=dict(sorted(injected.items())),
        failed_after_effect=sum(i.after_effect for i in injectors),
        loops=len(loops),
        loops_alive=len(loops) - len(dead),
        loop_errors=sum(loop_errors.values()),
        actions=len(accepted),
        runs=len(began),
        outcomes=dict(Counter(found.values())),
        lost=len(lost),
        duplicated=len(duplicated),
        unfinished=sum(1 for run in began if ended[run] != 1),
        stalls=stalls,
        backlog_at_end=sum(backlog.values()),
        time_to_resume=round(settled_after, 1),
    )

    # Every loop the server and each agent run is still there (13 and 6: no systemd here).
    assert dead == []
    assert names["server.results"] == 1 and names["agent.actions"] == len(HOSTS)
    assert set(drover_loops()) >= set(loops)
    # Failures were met by the loops (counted), and each class of each catalogue was thrown.
    assert sum(loop_errors.values()) > 0
    assert error_classes() <= set(injected)
    # And through all of it every action accepted ran once on every host, to its end.
    assert accepted and (lost, duplicated) == ({}, [])
    assert set(ended.values()) == {1}
