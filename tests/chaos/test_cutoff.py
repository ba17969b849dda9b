"""An agent cut off — its link to nats-server half-open, blackholed by a proxy: the TCP
connection stays up and nothing passes, so only unanswered pings can tell — while its services
change state 1,000 times and actions with a short deadline are asked of it. After the heal:

- every one of the 1,000 changes is on the events stream, in the order it happened on each
  service, none twice;
- the state bucket holds what the agent holds (the KV converges);
- the actions whose deadline passed meanwhile are reported `expired`, and never ran (their
  command's fsynced journal shows no begin).

The changes are real: script services (provider `script`) whose status command reports a
number one higher at each check, until it reaches its last. Under `make chaos` the cut lasts
longer than JetStream's duplicate window (120 s, bus/topology.py), with drover's own ping
settings, and the late actions are asked at once; in `make test` it lasts as long as the
changes take (about ten seconds), with pings every second, and the late actions are asked once
the agent has noticed (asked earlier, one may go to a fetch on the dead connection and come
again only after its 60 s ack wait). The heal resets the connections that lived through the
cut, as the end of a long cut does (tests/chaos/proxy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
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
from tests.busauth import superuser_client
from tests.chaos.conftest import FULL, cycles, executions, journaled_command, report
from tests.chaos.proxy import Proxy
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of
from tests.reports import events_stored

HOST = "cut"
SERVICES = 100
CHANGES = 10  # per service: SERVICES × CHANGES state changes while the agent is cut off
CHECK_INTERVAL = cycles(1, 12)  # seconds between two status checks of a service
CUT = cycles(0, 130)  # seconds at least; quick: as long as the changes take
PING_INTERVAL = cycles(1, 15)  # the agent's NATS pings (15 s is drover's default)
DEADLINE = cycles(2, 30)  # seconds, of the actions asked while it is cut off
EXPIRING = 5  # such actions

# A status check: "waiting" until the gate file exists, then one more change at each check,
# up to the last; always "failed" (exit 1), whose message is the output's last line.
STATUS = textwrap.dedent(
    """\
    counter=$1 gate=$2 last=$3
    [ -e "$gate" ] || { echo waiting; exit 1; }
    n=0
    [ -e "$counter" ] && read n < "$counter"
    if [ "$n" -lt "$last" ]; then n=$((n + 1)); echo "$n" > "$counter"; fi
    echo "change $n"
    exit 1
    """
)


def service_names() -> list[str]:
    return [f"s{n:03}" for n in range(SERVICES)]


def config(tmp: Path) -> dict[str, str]:
    """Application `watched`: SERVICES script services, observed only (drift is reported, not
    corrected); application `jobs`: the journaled command the expiring actions would run."""
    script = tmp / "status.sh"
    script.write_text(STATUS)
    (tmp / "counters").mkdir()
    services = "".join(
        f"      {name}:\n"
        "        provider: script\n"
        f"        status: [sh, '{script}', '{tmp / 'counters' / name}', '{tmp / 'gate'}', "
        f"'{CHANGES}']\n"
        "        start: ['true']\n"
        "        stop: ['true']\n"
        "        policy: observe\n"
        f"        check_interval: {CHECK_INTERVAL}\n"
        for name in service_names()
    )
    argv, _ = journaled_command(tmp, "late", 0.1)
    listed = ", ".join(f"'{item}'" for item in argv)
    return {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": f"hosts:\n  {HOST}: {{}}\n",
        "apps.yaml": (
            "applications:\n"
            "  watched:\n"
            "    groups: [all]\n"
            "    services:\n"
            f"{services}"
            "  jobs:\n"
            "    groups: [all]\n"
            "    commands:\n"
            f"      late:\n        argv: [{listed}]\n"
        ),
    }


@dataclass
class CutOff:
    """The fleet, its agent (behind `proxy`) and a client that sees the bus as it is."""

    fleet: Fleet
    agent: Agent
    proxy: Proxy
    bus: Client
    tmp: Path


@contextlib.asynccontextmanager
async def agent_behind(fleet: Fleet, proxy: Proxy) -> AsyncIterator[Agent]:
    """The agent of HOST, enrolled over the API, connecting to nats-server through `proxy`."""
    assert fleet.server is not None
    data_dir = fleet.tmp / "agents" / HOST
    await enroll_local_agent(fleet.server, HOST, data_dir)
    agent = Agent(
        AgentSettings(
            host_id=HOST,
            data_dir=data_dir,
            bus=BusSettings(name=f"test-agent-{HOST}", ping_interval=PING_INTERVAL),
            nats_url=f"tls://127.0.0.1:{proxy.port}",
            heartbeat_interval=1.0,
            drain_timeout=5.0,
            systemd="off",
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name=f"test agent {HOST}")
    try:
        await asyncio.wait_for(agent.ready.wait(), 20)
        yield agent
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 20)


@pytest.fixture
async def cutoff(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[CutOff]:
    proxy = Proxy(nats_server.host, nats_server.port)
    await proxy.start()
    bus = await superuser_client(nats_server)
    try:
        async with fleet_of(nats_server, tmp_path, config(tmp_path)) as fleet:
            await fleet.start_server()
            async with agent_behind(fleet, proxy) as agent:
                yield CutOff(fleet, agent, proxy, bus, tmp_path)
    finally:
        proxy.heal()
        await proxy.close()
        await bus.close()


async def bucket_view(bus: Client) -> dict[str, str]:
    """Service → the message of its state in the state bucket."""
    kv = await bus.jetstream().key_value(subjects.STATE_BUCKET)
    view: dict[str, str] = {}
    for name in service_names():
        with contextlib.suppress(Exception):  # not there yet
            entry = await kv.get(subjects.service_key(HOST, "watched", name))
            if entry.value:
                view[name] = decode(ServiceState, "kv", entry.value).message
    return view


def agent_view(agent: Agent) -> dict[str, str]:
    return {s.service: s.message for s in agent.reporter.latest() if s.application == "watched"}


async def events_in_order(bus: Client) -> dict[str, list[str]]:
    """Service → the messages of its events on the events stream, in stream order."""
    found: dict[str, list[str]] = {}
    for state in await events_stored(bus, subjects.event_subject(HOST, "watched", "*")):
        found.setdefault(state.service, []).append(state.message)
    return found


def change_number(message: str) -> int | None:
    """n of "status exited 1: change n"; None for any other message."""
    head, _, number = message.rpartition("change ")
    return int(number) if head.endswith(": ") and number.isdigit() else None


async def delivered(bus: Client) -> int:
    """How many messages the agent's actions consumer has delivered so far."""
    js = bus.jetstream()
    info = await js.consumer_info(subjects.ACTIONS_STREAM, subjects.agent_actions_consumer(HOST))
    return info.delivered.consumer_seq if info.delivered else 0


async def ask_late_actions(fleet: Fleet) -> list[str]:
    assert fleet.http is not None
    body: dict[str, Any] = {
        "kind": "command",
        "application": "jobs",
        "command": "late",
        "hosts": [HOST],
        "deadline_s": DEADLINE,
    }
    ids = []
    for _ in range(EXPIRING):
        created = await fleet.http.post("/api/v1/actions", json=body)
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])
    return ids


@dataclass
class Cut:
    """What happened around one cut, in seconds from its start (the loop's clock)."""

    lasted: float = 0.0
    changed_within: float = 0.0  # all the changes had happened on the agent
    noticed_after: float = 0.0  # the agent's client found its connection stale
    told_after: float = 0.0  # ... and told drover (disconnected callback)
    reconnected_after_heal: float = 0.0
    converged_after_heal: float = 0.0  # the state bucket held the agent's view
    late: list[str] = field(default_factory=list)  # actions asked meanwhile
    late_delivered: int = 0  # of those, delivered to fetches of the dead connection
    connects: int = 0  # connections the agent opened to the proxy while it was black
    bucket_during_cut: dict[str, str] = field(default_factory=dict)


async def through_a_cut(cutoff: CutOff, final: dict[str, str]) -> Cut:
    """Blackhole the agent's link; let every change happen and the late actions be asked for;
    heal it once CUT has passed; wait until the state bucket holds the agent's view."""
    agent, proxy, bus = cutoff.agent, cutoff.proxy, cutoff.bus
    loop = asyncio.get_running_loop()
    cut = Cut()
    proxy.blackhole()
    start = loop.time()
    accepted = proxy.accepted
    noticed = asyncio.create_task(when(lambda: not agent.bus.is_connected))
    told = asyncio.create_task(when(lambda: agent.counters.get("bus.disconnects") > 0))
    try:
        (cutoff.tmp / "gate").touch()
        if not FULL:
            # Not before the agent has noticed: an action sent in the seconds it has not may
            # go to a fetch on its dead connection, and come again after its ack wait (60 s).
            await asyncio.wait_for(asyncio.shield(noticed), 15)
        delivered_before = await delivered(bus)
        cut.late = await ask_late_actions(cutoff.fleet)
        await eventually(lambda: agent_view(agent) == final, timeout=CUT + 60, interval=0.2)
        cut.changed_within = loop.time() - start
        await asyncio.sleep(max(0.0, start + CUT - loop.time()))
        cut.late_delivered = await delivered(bus) - delivered_before
        cut.bucket_during_cut = await bucket_view(bus)

        cut.connects = proxy.accepted - accepted
        proxy.heal()
        healed = loop.time()
        cut.lasted = healed - start
        generation = agent.bus.generation
        await eventually(lambda: agent.bus.generation > generation, timeout=30, interval=0.05)
        cut.reconnected_after_heal = loop.time() - healed
        await eventually(lambda: _equal(bucket_view(bus), final), timeout=60, interval=0.2)
        cut.converged_after_heal = loop.time() - healed
        cut.noticed_after = await asyncio.wait_for(noticed, 1) - start
        cut.told_after = await asyncio.wait_for(told, 60) - start
    finally:
        noticed.cancel()
        told.cancel()
    return cut


# Each reconnect attempt the agent makes while the link is black reaches the proxy, which holds
# it; nats-py gives up on it (no INFO within its connect timeout) without closing the socket it
# opened (nats/aio/client.py, Client._attempt_reconnect), and the StreamWriter is found
# unclosed when collected. nats-py's leak, counted here (connects_during_cut), not drover's.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function StreamWriter.__del__"
    ":pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.timeout(cycles(90, 600))
async def test_an_agent_cut_off_reports_every_change_in_order_and_runs_nothing_late(
    cutoff: CutOff,
) -> None:
    agent, bus = cutoff.agent, cutoff.bus
    waiting = {name: "status exited 1: waiting" for name in service_names()}
    final = {name: f"status exited 1: change {CHANGES}" for name in service_names()}
    await eventually(lambda: agent_view(agent) == waiting, timeout=30)
    await eventually(lambda: _equal(bucket_view(bus), waiting), timeout=30)

    cut = await through_a_cut(cutoff, final)

    healed = asyncio.get_running_loop().time()
    outcomes = await _outcomes(cutoff.fleet, cut.late)
    answered_after = cut.converged_after_heal + asyncio.get_running_loop().time() - healed
    began, _ = executions(cutoff.tmp / "late.journal")
    events = await _all_events(bus)
    changes = {
        name: [n for n in map(change_number, events.get(name, [])) if n is not None]
        for name in service_names()
    }
    reported = sum(len(set(seen)) for seen in changes.values())
    report(
        "agent_cut_off",
        cycles=1,
        cut_seconds=round(cut.lasted, 1),
        changes_within_seconds=round(cut.changed_within, 1),
        state_changes=SERVICES * CHANGES,
        reported=reported,
        out_of_order=sum(
            1 for seen in changes.values() for a, b in itertools.pairwise(seen) if b < a
        ),
        lost=SERVICES * CHANGES - reported,
        duplicated=sum(len(seen) - len(set(seen)) for seen in changes.values()),
        kv_converged=(await bucket_view(bus)) == agent_view(agent) == final,
        kv_changed_during_cut=sum(
            1 for name, message in cut.bucket_during_cut.items() if message != waiting[name]
        ),
        actions=len(cut.late),
        late_delivered_into_the_cut=cut.late_delivered,
        connects_during_cut=cut.connects,
        expired_not_run=sum(
            1 for action in cut.late if outcomes[action] == "expired" and not began[action, HOST]
        ),
        stale_noticed_after=round(cut.noticed_after, 1),
        disconnected_callback_after=round(cut.told_after, 1),
        time_to_reconnect=round(cut.reconnected_after_heal, 1),
        time_to_resume=round(cut.converged_after_heal, 1),
        late_answered_after_heal=round(answered_after, 1),
        stalls=stalls(agent),
        events_dropped=agent.counters.get("agent.events_dropped"),
    )

    # The agent noticed the half-open link by itself (its pings went unanswered) within the
    # cut, and nothing of what happened meanwhile got through before the heal.
    assert cut.noticed_after < cut.lasted
    assert cut.bucket_during_cut == waiting
    # Every change, on every service, in the order it happened, once: 1..CHANGES.
    assert changes == {name: list(range(1, CHANGES + 1)) for name in service_names()}
    assert await bucket_view(bus) == agent_view(agent) == final
    # Too late to run: reported expired, never begun.
    assert outcomes == dict.fromkeys(cut.late, "expired")
    assert [began[action, HOST] for action in cut.late] == [0] * EXPIRING


def stalls(agent: Agent) -> float:
    """Times one of the agent's consumers or watches stalled and was recreated."""
    return sum(
        sample.value
        for family in agent.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "drover_consumer_stalls_total"
    )


async def when(condition: Callable[[], bool]) -> float:
    """The loop's time when `condition` first holds (looked at every 10 ms)."""
    while True:
        if condition():
            return asyncio.get_running_loop().time()
        await asyncio.sleep(0.01)


async def _equal(view: Any, expected: dict[str, str]) -> bool:
    return bool(await view == expected)


async def _outcomes(fleet: Fleet, actions: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}

    async def answered() -> bool:
        for action_id in actions:
            action = await fleet.get(f"/api/v1/actions/{action_id}")
            found[action_id] = action["hosts"][0]["outcome"]
        return all(outcome not in ("pending", "dispatched") for outcome in found.values())

    await eventually(answered, timeout=30, interval=0.5)
    return found


async def _all_events(bus: Client) -> dict[str, list[str]]:
    """The events once every service's last change has reached the stream (events follow the
    KV writes), or as they are after 30 s."""
    last = f"status exited 1: change {CHANGES}"
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        found = await events_in_order(bus)
        done = all(found.get(name, [""])[-1] == last for name in service_names())
        if done or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)
