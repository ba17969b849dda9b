"""Runtime state is recoverable (invariant 2), and no action waits for ever."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.msg import Msg

from drover.bus import subjects
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


async def test_a_result_the_bus_did_not_take_is_sent_again_as_soon_as_it_can_be(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    journaled_service: Journaled,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The link broke as the result went: it is sent again at once, not when the action
    comes again after its ack wait (a minute), and the action does not run twice."""
    web, web_journal = journaled_service("web")
    worker, _ = journaled_service("worker")
    async with fleet_of(nats_server, tmp_path, shop_config(web, worker)) as fleet:
        await fleet.start_server()
        agent = await fleet.start_agent("h1")
        await eventually(lambda: len(starts(web_journal)) == 1)
        publish = agent.bus.publish
        failed: list[str] = []

        async def lost_once(subject: str, message: Any, **kwargs: Any) -> None:
            if subject == subjects.result_subject("h1") and not failed:
                failed.append(subject)
                raise nats.errors.TimeoutError  # the link broke as it went
            await publish(subject, message, **kwargs)

        monkeypatch.setattr(agent.bus, "publish", lost_once)
        nak = Msg.nak

        async def nak_lost_too(msg: Msg, delay: float | None = None) -> None:
            if failed:  # the broken link takes the agent's hand-back with it
                raise nats.errors.TimeoutError
            await nak(msg, delay)

        monkeypatch.setattr(Msg, "nak", nak_lost_too)
        action = await run_action(
            fleet, {"kind": "restart", "application": "shop", "service": "web"}
        )
        assert failed and action["state"] == "succeeded", action
        assert agent.executor.executions == 1
        assert len(starts(web_journal)) == 2
