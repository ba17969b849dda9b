"""A remote site behind an outpost, its link to the hub cut — for 10 s, 3 min and an hour — while
its services keep changing and actions are asked of it. After the heal:

- an action that had begun on the site's hosts before the cut finished there, and its results
  reached the hub: recorded `succeeded`, run once on each host (its fsynced journal says so);
- actions asked during the cut, with a deadline shorter than the cut, are `expired` on every
  host and never ran;
- an action asked during the cut with a long deadline ran once on every host, after the heal;
- every state change made during the cut (thousands) is on the hub's events stream, once —
  in the 3-minute cut, those of the host whose agent is restarted (a reboot) too, from its disk;
- the hub's state bucket holds what the hosts hold, and the hub sees every host online.

The hosts are real agents (agent/app.py) on simulated services (sim/provider.py): the test
makes their services fail and start again, and counts each change where the service reports
it, apart from drover. An hour's cut is time-compressed: the link is black for a shorter time
(10 s in `make test`, 65 s in `make chaos`), then the clocks of the server and the agents move
on by the rest (ShiftedClock), so deadlines and host lifecycles see the hour. nats-server's own
timers are not moved: the 3-minute cut lasts 65 s of real time in `make test` (past the 60 s
ack wait of the actions consumer, which the 10 s cut is not) and 3 minutes in `make chaos`
(past the events stream's 2-minute duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from drover.agent.app import Agent, AgentSettings
from drover.bus import subjects
from drover.bus.connection import BusSettings
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import ServiceState, decode
from drover.cli.dev import enroll_local_agent
from drover.model.action import ActionKind
from drover.sim.hosts import PROVIDERS
from drover.sim.provider import SimulatedProvider
from tests.busauth import superuser_client
from tests.chaos.conftest import cycles, executions, journaled_command, report
from tests.conftest import eventually
from tests.harness import Fleet, ShiftedClock, fleet_of
from tests.outpost.conftest import Site, site_of
from tests.reports import events_stored

HOSTS = ("far-1", "far-2")
SERVICES = 100  # per host
SLOW = 4.0  # seconds the action begun before the cut runs
# Changes during the cut: 2 × SERVICES × CHURN_ROUNDS on each host, spread over the cut,
# within what an agent keeps while its bus is away (reporter.EVENT_SPOOL, 10,000).
CHURN_ROUNDS = 20
SHORT_DEADLINE = 5  # seconds: the actions asked during the cut that must not run
EXPIRING = 3  # such actions


@dataclass(frozen=True)
class Cut:
    name: str
    black: float  # seconds of real time the link passes nothing
    stands_for: float  # seconds the cut stands for: the clocks move on by the rest
    reboot: bool = False  # a host's agent restarted during the cut


# The reboot goes with the 3-minute cut, which is black past the actions consumer's 60 s ack
# wait anyway: in a shorter cut, an action fetched by the agent's first life waits out that
# ack wait at the hub after the heal, a minute of `make test` that proves nothing more.


CUTS = [
    Cut("10s", 10, 10),
    Cut("3min", cycles(65, 180), 180, reboot=True),
    Cut("1h", cycles(10, 65), 3600),
]


def service_names() -> list[str]:
    return [f"s{n:03}" for n in range(SERVICES)]


def config(tmp: Path) -> dict[str, str]:
    """Application `site`: SERVICES services on every host, observed (the test moves them);
    commands `slow` and `late`, each journaling its runs."""
    slow, _ = journaled_command(tmp, "slow", SLOW)
    late, _ = journaled_command(tmp, "late", 0.1)
    services = "".join(
        f"      {name}:\n"
        "        provider: script\n"
        "        status: ['true']\n"
        "        start: ['true']\n"
        "        stop: ['true']\n"
        "        policy: observe\n"
        for name in service_names()
    )

    def argv(items: list[str]) -> str:
        return "[" + ", ".join(f"'{item}'" for item in items) + "]"

    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": "hosts:\n" + "".join(f"  {host}: {{}}\n" for host in HOSTS),
        "site.yaml": (
            "applications:\n"
            "  site:\n"
            "    groups: [all]\n"
            "    services:\n"
            f"{services}"
            "    commands:\n"
            f"      slow:\n        argv: {argv(slow)}\n"
            f"      late:\n        argv: {argv(late)}\n"
        ),
    }


@dataclass
class Host:
    agent: Agent
    provider: SimulatedProvider  # the one that holds `script` services
    changes: Counter[str]  # service → changes it reported, counted apart from drover
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def halt(self) -> None:
        self.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.task, 20)


@dataclass
class Remote:
    fleet: Fleet
    site: Site
    hosts: dict[str, Host]
    clock: ShiftedClock
    bus: Client  # sees the hub as it is
    tmp: Path


async def start_host(
    fleet: Fleet, site: Site, name: str, clock: ShiftedClock, changes: Counter[str]
) -> Host:
    """The agent of `name`, enrolled over the API (once), connected to the site's outpost,
    on simulated services whose every change `changes` counts."""
    assert fleet.server is not None
    data_dir = fleet.tmp / "agents" / name
    if not (data_dir / "identity").exists():
        await enroll_local_agent(fleet.server, name, data_dir)
    providers = [SimulatedProvider(kind, name, clock) for kind in PROVIDERS]
    script = next(p for p in providers if p.name == "script")
    script.subscribe(lambda state: changes.update([state.service]))
    agent = Agent(
        AgentSettings(
            host_id=name,
            data_dir=data_dir,
            bus=BusSettings(name=f"test-agent-{name}"),
            nats_url=site.url,
            heartbeat_interval=1.0,
            drain_timeout=5.0,
            systemd="off",
        ),
        clock,
        open_providers=lambda _tg: list(providers),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name=f"test agent {name}")
    await asyncio.wait_for(agent.ready.wait(), 20)
    return Host(agent, script, changes, stop, task)


@pytest.fixture
async def remote(hub: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Remote]:
    clock = ShiftedClock()
    bus = await superuser_client(hub)
    try:
        async with (
            fleet_of(hub, tmp_path, config(tmp_path)) as fleet,
            site_of(hub, tmp_path, "far") as site,
        ):
            await fleet.start_server(clock=clock)
            hosts: dict[str, Host] = {}
            try:
                for name in HOSTS:
                    hosts[name] = await start_host(fleet, site, name, clock, Counter())
                yield Remote(fleet, site, hosts, clock, bus, tmp_path)
            finally:
                for host in hosts.values():
                    await host.halt()
    finally:
        await bus.close()


async def ask(fleet: Fleet, command: str, deadline_s: float | None = None) -> str:
    assert fleet.http is not None
    body: dict[str, Any] = {"kind": "command", "application": "site", "command": command}
    body |= {"hosts": list(HOSTS)} | ({"deadline_s": deadline_s} if deadline_s else {})
    created = await fleet.http.post("/api/v1/actions", json=body)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


async def outcomes(fleet: Fleet, action_id: str) -> dict[str, str]:
    action = await fleet.get(f"/api/v1/actions/{action_id}")
    return {host["host"]: host["outcome"] for host in action["hosts"]}


async def churn(hosts: dict[str, Host], seconds: float) -> int:
    """CHURN_ROUNDS times over `seconds`: fail every service and start it again, on every
    host (two changes each); the changes made."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    made = 0
    for round_ in range(CHURN_ROUNDS):
        for name in service_names():
            for host in hosts.values():
                assert host.provider.fail("site", name)
                await host.provider.act("site", name, ActionKind.START)
                made += 2
        await asyncio.sleep(max(0.0, start + seconds * (round_ + 1) / CHURN_ROUNDS - loop.time()))
    return made


async def events_by_host(bus: Client) -> dict[str, Counter[str]]:
    """Host → service → how many events of it the hub's events stream holds."""
    found: dict[str, Counter[str]] = {host: Counter() for host in HOSTS}
    for state in await events_stored(bus):
        if state.host in found and state.application == "site":
            found[state.host][state.service] += 1
    return found


async def bucket_matches(bus: Client, hosts: dict[str, Host]) -> bool:
    """The hub's state bucket holds every service's state as its host holds it."""
    kv = await bus.jetstream().key_value(subjects.STATE_BUCKET)
    for name, host in hosts.items():
        for state in host.provider.states():
            try:
                entry = await kv.get(subjects.service_key(name, "site", state.service))
            except Exception:
                return False
            if not entry.value or decode(ServiceState, "kv", entry.value).since != state.since:
                return False
    return True


@pytest.mark.parametrize("cut", CUTS, ids=[cut.name for cut in CUTS])
@pytest.mark.timeout(cycles(240, 600))
async def test_a_site_cut_off_loses_nothing_runs_nothing_twice_and_nothing_late(
    remote: Remote, cut: Cut
) -> None:
    fleet, site, hosts, bus = remote.fleet, remote.site, remote.hosts, remote.bus
    loop = asyncio.get_running_loop()
    await eventually(lambda: bucket_matches(bus, hosts), timeout=30, interval=0.5)
    changes_before = sum(sum(h.changes.values()) for h in hosts.values())

    # Begun before the cut, finished during it.
    slow = await ask(fleet, "slow")
    await eventually(
        lambda: len(executions(remote.tmp / "slow.journal")[0]) == len(HOSTS), timeout=30
    )
    site.link.blackhole()
    cut_at = loop.time()
    noticed = asyncio.create_task(_when(site.outpost.link_down))
    # Asked during the cut: the late ones must never run, the patient one must run once.
    late = [await ask(fleet, "late", SHORT_DEADLINE) for _ in range(EXPIRING)]
    patient = await ask(fleet, "late", cut.stands_for + 600)
    made = await churn(hosts, cut.black - (loop.time() - cut_at) - 3)
    # A host rebooted during the cut: what its agent had spooled is on its disk.
    restored = 0
    if cut.reboot:
        restarted = HOSTS[-1]
        await hosts[restarted].halt()
        hosts[restarted] = await start_host(
            fleet, site, restarted, remote.clock, hosts[restarted].changes
        )
        restored = len(hosts[restarted].agent.reporter._events)
    await asyncio.sleep(max(0.0, cut_at + cut.black - loop.time()))
    during = sum(sum(h.changes.values()) for h in hosts.values()) - changes_before
    spooled = sum(len(h.agent.reporter._events) for h in hosts.values())

    remote.clock.offset = timedelta(seconds=cut.stands_for - (loop.time() - cut_at))
    site.link.heal()
    healed = loop.time()
    await asyncio.wait_for(site.outpost.link_up.wait(), 60)
    relinked = loop.time() - healed

    # Every change made on the hosts is on the hub's events stream once, and the bucket agrees.
    truth = {name: host.changes for name, host in hosts.items()}
    await eventually(lambda: _events_match(bus, truth), timeout=120, interval=1.0)
    events_after = loop.time() - healed
    await eventually(lambda: bucket_matches(bus, hosts), timeout=60, interval=0.5)

    # What each action must come to. After an hour's cut the server has marked the hosts that
    # had not answered `expired` (deadline and answer_grace passed) by the time the results
    # come: a host's real result replaces that mark when it shows it started in time.
    wanted = {slow: "succeeded", patient: "succeeded"} | {a: "expired" for a in late}

    async def all_as_wanted() -> bool:
        for action_id, outcome in wanted.items():
            if await outcomes(fleet, action_id) != {host: outcome for host in HOSTS}:
                return False
        return True

    await eventually(all_as_wanted, timeout=150, interval=0.5)
    settled_after = loop.time() - healed

    async def online() -> bool:
        listed = await fleet.get("/api/v1/hosts")
        return {h["host"] for h in listed if h["online"]} >= set(HOSTS)

    await eventually(online, timeout=30, interval=0.5)

    slow_began, slow_ended = executions(remote.tmp / "slow.journal")
    late_began, _ = executions(remote.tmp / "late.journal")
    report(
        "outpost_cut",
        cut=cut.name,
        black_seconds=round(cut.black, 1),
        stands_for_seconds=cut.stands_for,
        outpost_noticed_after=_seconds_after(noticed, cut_at),
        relinked_after_heal=round(relinked, 1),
        changes_during_cut=during,
        changes_made=made,
        spooled_by_the_restarted_agent_before=restored,
        spooled_at_heal=spooled,
        events_on_hub_after_heal=round(events_after, 1),
        actions_settled_after_heal=round(settled_after, 1),
    )
    # 8,000, and the restarted agent's new services
    reborn = SERVICES if cut.reboot else 0
    assert during == made + reborn == 2 * SERVICES * CHURN_ROUNDS * len(HOSTS) + reborn
    if cut.reboot:
        assert restored >= made // len(HOSTS)  # its first life's, from its disk
    assert await outcomes(fleet, slow) == {host: "succeeded" for host in HOSTS}
    assert set(slow_began.values()) == {1} and set(slow_ended.values()) == {1}
    assert len(slow_began) == len(HOSTS)
    for action_id in late:
        assert await outcomes(fleet, action_id) == {host: "expired" for host in HOSTS}
        assert not any(late_began[action_id, host] for host in HOSTS)
    assert await outcomes(fleet, patient) == {host: "succeeded" for host in HOSTS}
    assert [late_began[patient, host] for host in HOSTS] == [1] * len(HOSTS)


async def _when(event: asyncio.Event) -> float:
    """The loop's time when `event` is set."""
    await event.wait()
    return asyncio.get_running_loop().time()


def _seconds_after(task: asyncio.Task[float], start: float) -> float | None:
    """How long after `start` the task's moment came; None if it did not come (cancelled)."""
    if not task.done():
        task.cancel()
        return None
    return round(task.result() - start, 1)


async def _events_match(bus: Client, truth: dict[str, Counter[str]]) -> bool:
    found = await events_by_host(bus)
    return all(found[host] == +truth[host] for host in HOSTS)
