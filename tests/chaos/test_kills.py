"""kill -9 of the server, of an agent and of the nats-server while a continuous stream of
fanned-out commands runs: nothing the API accepted is lost, nothing runs twice, and a command
cut short by its agent's death is reported `interrupted` — counted in the command's own
fsynced journal, not in drover's word. Then SIGTERM to an agent, again and again, in the middle
of the same stream: each stop drains, and the service it supervises stays up throughout."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drover.bus.embedded import EmbeddedNats
from tests.chaos.conftest import cycles, executions, journaled_command, report
from tests.chaos.processes import Process, ProcessFleet
from tests.chaos.tally import recorded_actions, stalls, tally
from tests.conftest import eventually
from tests.harness import write_tree
from tests.systemd_namespace import SystemdNamespace, boot_or_skip

HOSTS = ["h1", "h2", "h3"]
FINAL = {"succeeded", "failed", "expired", "interrupted", "rejected", "skipped", "cancelled"}


def config(tmp: Path, seconds: float) -> dict[str, str]:
    """Application `jobs` on every host, with commands `work` (takes `seconds`) and `long`
    (a minute), each journaling its executions (work.journal, long.journal)."""

    def flow(argv: list[str]) -> str:
        return "[" + ", ".join(f"'{a}'" for a in argv) + "]"

    work, _ = journaled_command(tmp, "work", seconds)
    long, _ = journaled_command(tmp, "long", 60)
    return {
        "hosts.yaml": "hosts:\n" + "".join(f"  {h}: {{}}\n" for h in HOSTS),
        "jobs.yaml": (
            "applications:\n  jobs:\n    hosts: ['h*']\n    commands:\n"
            f"      work: {{argv: {flow(work)}, timeout: 60}}\n"
            f"      long: {{argv: {flow(long)}, timeout: 120}}\n"
        ),
    }


class Stream:
    """A fanned-out command to every host, one after another every `every` seconds, for as
    long as it runs — through the faults. A request the server was not there to take is not
    an action; one it answered is. Its pace is one the agents keep up with (an agent runs
    one action at a time), so a backlog shows a fault, not the load."""

    def __init__(self, http: httpx.AsyncClient, every: float = 1.0) -> None:
        self.http = http
        self.every = every
        self.accepted: list[str] = []
        self.unanswered = 0  # connection refused or cut: the client knows it may not exist
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def ask(self) -> str | None:
        try:
            answer = await self.http.post(
                "/api/v1/actions",
                json={"kind": "command", "application": "jobs", "command": "work"},
            )
        except httpx.TransportError:
            self.unanswered += 1
            return None
        if answer.status_code >= 500:  # e.g. the database is busy while the server restarts
            self.unanswered += 1
            return None
        assert answer.status_code == 202, answer.text
        self.accepted.append(answer.json()["id"])
        return str(answer.json()["id"])

    async def _run(self) -> None:
        while True:
            await self.ask()
            await asyncio.sleep(self.every)


async def until_final(http: httpx.AsyncClient, timeout: float) -> list[dict[str, Any]]:
    """Every action on the record once every host of each has a final outcome; or fail,
    naming the hosts still waiting."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    waiting: list[tuple[str, str, str]] = []
    while loop.time() < end:
        with contextlib.suppress(httpx.TransportError):
            found = await recorded_actions(http, "jobs")
            waiting = [
                (a["id"], h["host"], h["outcome"])
                for a in found
                for h in a["hosts"]
                if h["outcome"] not in FINAL
            ]
            if not waiting:
                return found
        await asyncio.sleep(0.5)
    pytest.fail(f"{len(waiting)} runs still not final after {timeout}s: {waiting[:20]}")


async def resume_time(stream: Stream, since: float) -> float:
    """Seconds from `since` until an action asked after it has a result on every host."""
    loop = asyncio.get_running_loop()
    probe: str | None = None
    while probe is None:
        probe = await stream.ask()
        if probe is None:
            await asyncio.sleep(0.1)

    async def done() -> bool:
        try:
            answer = await stream.http.get(f"/api/v1/actions/{probe}")
        except httpx.TransportError:
            return False
        return all(h["outcome"] in FINAL for h in answer.json()["hosts"])

    await eventually(done, timeout=60, interval=0.1)
    return round(loop.time() - since, 2)


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[ProcessFleet]:
    config_dir = tmp_path / "config"
    write_tree(config_dir, config(tmp_path, seconds=0.5))
    fleet = ProcessFleet(nats_server, tmp_path, config_dir)
    try:
        await fleet.start_server()
        for host in HOSTS:
            await fleet.start_agent(host)
        yield fleet
    finally:
        await fleet.close()


async def kill_and_restart(victim: str, fleet: ProcessFleet, rng: random.Random) -> float:
    """SIGKILL `victim`, leave it dead a moment, start it again; when it started."""
    loop = asyncio.get_running_loop()
    if victim == "nats-server":
        process = fleet.nats.process
        assert process is not None
        process.kill()
        await process.wait()
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        restarted = loop.time()
        await fleet.nats.start()  # same port, same store: as systemd restarts it
        return restarted
    target: Process = fleet.server if victim == "server" else fleet.agents[rng.choice(HOSTS)]
    await target.kill()
    await asyncio.sleep(rng.uniform(0.5, 2.0))
    restarted = loop.time()
    await target.start()
    return restarted


@pytest.mark.parametrize("victim", ["agent", "server", "nats-server"])
@pytest.mark.timeout(cycles(85, 1800))
async def test_kill_9_under_a_stream_of_fanned_out_actions_loses_and_repeats_nothing(
    victim: str, fleet: ProcessFleet, tmp_path: Path
) -> None:
    rng = random.Random(7)
    rounds = cycles(1, 20)
    resumes: list[float] = []
    async with Stream(fleet.http) as stream:
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(1.0, 2.5))  # mid-stream, commands under way
            restarted = await kill_and_restart(victim, fleet, rng)
            resumes.append(await resume_time(stream, restarted))
        await asyncio.sleep(1.0)
    actions = await until_final(fleet.http, timeout=cycles(45, 300))
    counted = tally(actions, tmp_path / "work.journal")
    on_record = {a["id"] for a in actions}
    report(
        f"kill -9 {victim}",
        cycles=rounds,
        server_stalls=await stalls(fleet.http),
        accepted=len(stream.accepted),
        unanswered=stream.unanswered,
        resume_s_max=max(resumes),
        resume_s=resumes,
        **counted.counts(),
    )
    assert set(stream.accepted) <= on_record, "an action the API accepted is not on the record"
    counted.assert_nothing_lost_or_run_twice()
    assert counted.outcomes["succeeded"] > 0


def pids_running(marker: Path) -> list[int]:
    """Processes whose command line names `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(marker).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


async def test_a_command_running_when_its_agent_is_killed_dies_with_it_and_is_interrupted(
    fleet: ProcessFleet, tmp_path: Path
) -> None:
    """Unsupervised, it would run on with nobody to take its output or its result, and be
    reported `interrupted` all the same: it dies with the agent, as under systemd's default
    KillMode, and the record says so truly."""
    journal = tmp_path / "long.journal"
    asked = await fleet.http.post(
        "/api/v1/actions",
        json={"kind": "command", "application": "jobs", "command": "long", "hosts": ["h1"]},
    )
    assert asked.status_code == 202, asked.text
    action = asked.json()["id"]
    await eventually(lambda: executions(journal)[0][action, "h1"] == 1)
    assert len(pids_running(journal)) == 1
    await fleet.agents["h1"].kill()
    await eventually(lambda: pids_running(journal) == [])
    await fleet.agents["h1"].start()

    async def reported() -> str:
        found = await fleet.http.get(f"/api/v1/actions/{action}")
        return str(found.json()["hosts"][0]["outcome"])

    await eventually(lambda: reported_is(reported, "interrupted"), timeout=30)
    began, ended = executions(journal)
    assert (began[action, "h1"], ended[action, "h1"]) == (1, 0)


async def reported_is(outcome: Callable[[], Awaitable[str]], expected: str) -> bool:
    return await outcome() == expected


@pytest.fixture
def systemd() -> Iterator[SystemdNamespace]:
    namespace = boot_or_skip()
    try:
        yield namespace
    finally:
        namespace.stop()


@pytest.mark.systemd
@pytest.mark.timeout(cycles(85, 1800))
async def test_sigterm_again_and_again_drains_each_time_and_the_service_stays_up(
    nats_server: EmbeddedNats, tmp_path: Path, systemd: SystemdNamespace
) -> None:
    """An agent stopped with SIGTERM (an upgrade, a config change) over and over while
    commands stream to it: each stop drains, nothing is lost or run twice, and the systemd
    service it manages keeps running, untouched."""
    unit = "chaos-keeper.service"
    systemd.write_units({unit: "[Service]\nType=simple\nExecStart=/bin/sleep infinity\n"})
    config_dir = tmp_path / "config"
    files = config(tmp_path, seconds=0.5)
    files["keep.yaml"] = (
        "applications:\n  keep:\n    hosts: [h1]\n    services:\n"
        f"      keeper: {{provider: systemd, unit: {unit}}}\n"
    )
    write_tree(config_dir, files)
    fleet = ProcessFleet(nats_server, tmp_path, config_dir)
    rounds = cycles(3, 100)
    rng = random.Random(11)
    try:
        await fleet.start_server()
        agent = await fleet.start_agent(
            "h1",
            systemd=(
                'systemd = "on"\n'
                f'systemd_bus_address = "{systemd.bus_address}"\n'
                f'systemd_root = "{systemd.root}"\n'
            ),
        )
        for host in HOSTS[1:]:
            await fleet.start_agent(host)
        keeper = await running_pid(fleet, "h1")
        exits: list[int] = []
        async with Stream(fleet.http) as stream:
            for _ in range(rounds):
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                exits.append(await agent.terminate())
                await agent.start()
                await fleet.until_online("h1")
            await asyncio.sleep(1.0)
        actions = await until_final(fleet.http, timeout=cycles(45, 300))
        counted = tally(actions, tmp_path / "work.journal")
        after = await running_pid(fleet, "h1")
        report(
            "SIGTERM to an agent",
            cycles=rounds,
            accepted=len(stream.accepted),
            clean_exits=exits.count(0),
            server_stalls=await stalls(fleet.http),
            service_pid_kept=after == keeper,
            **counted.counts(),
        )
        assert exits == [0] * rounds
        counted.assert_nothing_lost_or_run_twice()
        assert after == keeper, "the managed service was restarted"
    finally:
        await fleet.close()


async def running_pid(fleet: ProcessFleet, host: str) -> int:
    found: dict[str, Any] = {}

    async def up() -> bool:
        answer = await fleet.http.get(f"/api/v1/hosts/{host}")
        services = {s["name"]: s for s in answer.json()["services"]}
        found.update(services.get("keeper", {}))
        return found.get("status") == "running" and bool(found.get("pid"))

    await eventually(up, timeout=30)
    return int(found["pid"])
