"""`drover sim`: simulated hosts, each the real agent with its own enrollment and NATS connection,
on a real server and nats-server; and the `ping` action they answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from drover.model.status import ServiceStatus
from drover.sim.hosts import HostsSettings, SimulatedHosts
from drover.sim.launch import SimSettings, application_file, enroll_all
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of, write_tree

DROVER = str(Path(sys.executable).parent / "drover")
CONFIG = {"groups.yaml": "groups: {}\n"}


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server()
        yield running


async def hosts_running(fleet: Fleet, count: int, services: int) -> bool:
    """`count` hosts online, each with `services` services of `sim` reported running."""
    assert fleet.server is not None and fleet.server.fleet is not None
    view = fleet.server.fleet
    states = [s for host in view.hosts for s in view.services_of(host)]
    running = [s for s in states if s.status is ServiceStatus.RUNNING]
    return len(view.hosts) == count and len(running) == count * services


async def ping(fleet: Fleet, **body: Any) -> dict[str, Any]:
    assert fleet.http is not None
    sent = await fleet.http.post("/api/v1/actions", json={"kind": "ping", "application": "sim"})
    assert sent.status_code == 202, sent.text
    action_id = sent.json()["id"]

    async def answered() -> dict[str, Any] | None:
        action: dict[str, Any] = await fleet.get(f"/api/v1/actions/{action_id}")
        return action if action["state"] != "running" else None

    await eventually(answered, timeout=30)
    done = await answered()
    assert done is not None
    return done


async def test_drover_sim_enrolls_hosts_that_report_their_services_and_answer_a_ping(
    fleet: Fleet, tmp_path: Path
) -> None:
    sim_dir = tmp_path / "sim"
    argv = [
        DROVER,
        "sim",
        "--agents",
        "24",
        "--processes",
        "2",
        "--services",
        "3",
        "--config",
        str(fleet.config_dir),
        "--data-dir",
        str(sim_dir),
        "--server",
        fleet.base_url,
    ]
    env = os.environ | {"DROVER_TOKEN": fleet.admin_token}

    log = tmp_path / "sim.log"

    async def started() -> tuple[asyncio.subprocess.Process, str]:
        with log.open("w") as out:
            process = await asyncio.create_subprocess_exec(*argv, env=env, stderr=out)

        async def up() -> str | None:
            said = log.read_text()
            assert process.returncode is None, f"drover sim ended: {said}"
            return said if "simulated hosts running" in said else None

        await eventually(up, timeout=60)
        return process, log.read_text()

    sim, said = await started()
    try:
        assert "enrolled 24 hosts" in said
        assert "24 simulated hosts running in 2 processes" in said
        await eventually(lambda: hosts_running(fleet, 24, 3), timeout=30)

        action = await ping(fleet)
        assert action["state"] == "succeeded"
        outcomes = {h["host"]: (h["outcome"], h["output"]) for h in action["hosts"]}
        assert outcomes == {f"sim-{n:02d}": ("succeeded", "pong") for n in range(24)}
        # A ping answers for the host, not a service: none is named, and none may be.
        assert fleet.http is not None
        one = {"kind": "ping", "application": "sim", "service": "svc00"}
        refused = await fleet.http.post("/api/v1/actions", json=one)
        assert refused.status_code == 422
        assert "not to a service" in refused.text
    finally:
        sim.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(sim.wait(), 30) == 0, log.read_text()

    # Enrolled once: a second run only starts them, with the identities they have.
    sim, said = await started()
    try:
        assert "enrolled" not in said
        action = await ping(fleet)
        assert action["state"] == "succeeded"
    finally:
        sim.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(sim.wait(), 30) == 0, log.read_text()


@contextlib.asynccontextmanager
async def simulated(
    fleet: Fleet, tmp_path: Path, flap_rate: float
) -> AsyncIterator[SimulatedHosts]:
    """Three simulated hosts with two services each, in this process, until the block ends."""
    write_tree(fleet.config_dir, {"applications/sim.yaml": application_file(2)})
    sim_dir = tmp_path / "sim"
    settings = SimSettings(fleet.base_url, fleet.admin_token, sim_dir, agents=3)
    assert await enroll_all(settings, settings.hosts) == 3
    hosts = SimulatedHosts(HostsSettings(sim_dir, tuple(settings.hosts), flap_rate=flap_rate))
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(hosts.run(stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        if not flap_rate:  # flapping, some are down at any time
            await eventually(lambda: hosts_running(fleet, 3, 2), timeout=30)
        yield hosts
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


def status(fleet: Fleet, host: str, service: str) -> ServiceStatus | None:
    assert fleet.server is not None and fleet.server.fleet is not None
    state = fleet.server.fleet.service(host, "sim", service)
    return state.status if state is not None else None


async def test_a_simulated_failure_is_reported_and_the_agent_starts_the_service_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    async with simulated(fleet, tmp_path, flap_rate=0) as hosts:
        host = hosts.settings.hosts[0]
        [process] = [p for p in hosts.providers[host] if p.name == "process"]
        assert process.fail("sim", "svc00")
        await eventually(lambda: status(fleet, host, "svc00") is ServiceStatus.FAILED)
        # The reconciler's to correct, as on a real host: started again after its backoff.
        await eventually(lambda: status(fleet, host, "svc00") is ServiceStatus.RUNNING)
        assert not process.fail("sim", "nothing")

        ledger = hosts.settings.data_dir / host / "ledger.jsonl"
        before = ledger.read_text() if ledger.exists() else ""
        action = await ping(fleet)
        assert action["state"] == "succeeded"
        after = ledger.read_text() if ledger.exists() else ""
        assert before == after  # a ping changes nothing: no fsync'd ledger entry for it


async def test_the_flap_rate_fails_services_across_the_hosts(fleet: Fleet, tmp_path: Path) -> None:
    # Slow enough that no service fails 5 times before its reconciler has started it again
    # (it gives up then, as on a real host): about one failure a service every 2 s.
    async with simulated(fleet, tmp_path, flap_rate=3.0) as hosts:
        seen: set[tuple[str, str]] = set()

        def failures_seen() -> bool:
            for host in hosts.settings.hosts:
                for service in ("svc00", "svc01"):
                    if status(fleet, host, service) is ServiceStatus.FAILED:
                        seen.add((host, service))
            return hosts.flaps >= 10 and len(seen) >= 2

        await eventually(failures_seen, timeout=20)


async def test_drover_sim_without_an_admin_token_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env["HOME"] = str(tmp_path)  # no token file from a `drover login` either
    process = await asyncio.create_subprocess_exec(
        DROVER,
        "sim",
        "--agents",
        "2",
        "--data-dir",
        str(tmp_path / "sim"),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert "admin's API token" in err.decode() and "Traceback" not in err.decode()
