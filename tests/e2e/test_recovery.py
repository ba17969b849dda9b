"""Runtime state is recoverable (invariant 2), and no action waits for ever."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from drover.bus.embedded import BusSecurity, EmbeddedNats
from tests.conftest import eventually, starts
from tests.e2e.conftest import shop_config
from tests.e2e.test_actions import run_action, service_pid
from tests.harness import fleet_of

Journaled = Callable[[str], tuple[list[str], Path]]


async def test_after_the_bus_loses_all_its_data_everything_comes_back(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    web, web_journal = journaled_service("web")
    worker, _ = journaled_service("worker")
    nats = EmbeddedNats(tmp_path / "nats", security=BusSecurity.local(tmp_path / "bus"))
    await nats.start()
    try:
        async with fleet_of(nats, tmp_path, shop_config(web, worker)) as fleet:
            await fleet.start_server()
            await fleet.start_agent("h1")
            await eventually(lambda: service_pid(fleet, "shop", "web"))

            # Wipe the JetStream store and bring the server back on the same address.
            port = nats.port
            await nats.stop()
            shutil.rmtree(tmp_path / "nats")
            nats.port = port
            await nats.start()

            # The agents re-report, the server re-publishes desired state, actions flow again.
            async def pid_reported() -> bool:
                return await service_pid(fleet, "shop", "web") is not None

            await eventually(pid_reported, timeout=30)
            action = await run_action(
                fleet, {"kind": "restart", "application": "shop", "service": "web"}
            )
            assert action["state"] == "succeeded", action
            await eventually(lambda: len(starts(web_journal)) == 2)
            assert fleet.agents["h1"].executor.executions == 1
    finally:
        await nats.stop()


async def test_a_host_that_never_answers_is_expired_after_the_deadline(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> None:
    web, _ = journaled_service("web")
    async with fleet_of(nats_server, tmp_path, shop_config(web, web)) as fleet:
        # h1 is in the config but its agent never comes.
        await fleet.start_server(answer_grace=timedelta(seconds=0.5))
        action = await run_action(
            fleet, {"kind": "restart", "application": "shop", "deadline_s": 0.5}
        )
        assert action["state"] == "failed"
        [host] = action["hosts"]
        assert (host["host"], host["outcome"]) == ("h1", "expired")
        assert "no answer" in host["output"]
