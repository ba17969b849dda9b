"""SIGTERM drains: the agent takes no new action, finishes the one in flight, then exits."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.harness import fleet_of

# Ignores SIGTERM, so stopping it takes the whole stop_timeout: an action that takes a while.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(sys.argv[1], 'a').write('x'); time.sleep(3600)"
)


async def test_an_action_in_flight_finishes_and_its_result_is_recorded(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"  # an 'x' for each process that now ignores SIGTERM
    config = {
        "apps.yaml": (
            "applications:\n  slow:\n    hosts: [h1]\n    services:\n"
            f"      web:\n        command: ['{sys.executable}', '-S', '-c', \"{STUBBORN}\","
            f" '{ready}']\n"
            "        stop_timeout: 2\n"
        )
    }
    async with fleet_of(nats_server, tmp_path, config) as fleet:
        assert fleet.http is None
        await fleet.start_server()
        agent = await fleet.start_agent("h1")
        assert fleet.http is not None

        async def running() -> bool:
            app = await fleet.get("/api/v1/applications/slow")
            placed = app["services"][0]["hosts"]
            return bool(placed and placed[0]["status"] == "running")

        await eventually(running)
        await eventually(ready.exists)  # so the restart's stop really takes stop_timeout
        created = await fleet.http.post(
            "/api/v1/actions", json={"kind": "restart", "application": "slow"}
        )
        action_id = created.json()["id"]
        await eventually(lambda: not agent.executor.idle.is_set())  # the restart has begun

        halted = asyncio.get_running_loop().time()
        await fleet.running[-1].halt(timeout=30)  # the agent's stop event: SIGTERM's path
        took = asyncio.get_running_loop().time() - halted

        found: dict[str, object] = {}

        async def answered() -> bool:
            found.update(await fleet.get(f"/api/v1/actions/{action_id}"))
            return found["state"] != "running"

        await eventually(answered)  # the server records what the agent sent before exiting
        [host] = found["hosts"]
        assert host["outcome"] == "succeeded", host  # finished and reported, not interrupted
        assert "slow/web: restarted" in host["output"]
        assert agent.executor.executions == 1
        assert took >= 1.0  # it waited for the stubborn stop inside the restart
