"""A malformed message on any subject drover consumes is logged, counted and dropped, and the
loop that consumed it keeps going."""

from __future__ import annotations

import logging

import pytest

from drover.bus import subjects
from tests.busauth import signed, superuser_client
from tests.conftest import eventually
from tests.e2e.test_actions import run_action, service_pid
from tests.harness import Fleet

GARBAGE = [b"", b"not json", b'{"v": 1}', b'{"v": 99, "host": "h1"}', b"\xff\xfe"]


async def test_garbage_on_every_consumed_subject_is_dropped_and_the_loops_go_on(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    agent = await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    assert fleet.server is not None

    nc = await superuser_client(fleet.nats)
    try:
        js = nc.jetstream()
        state = await js.key_value(subjects.STATE_BUCKET)
        desired_subject = subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key("h1"))
        for junk in GARBAGE[1:]:
            # agent: actions (signed: junk the server itself sent, not a forgery)
            await js.publish(subjects.action_subject("h1"), junk, headers=signed(fleet.nats, junk))
            await js.publish(subjects.result_subject("h1"), junk)  # server: results
            # agent: desired state (signed too, as the server signs it)
            await js.publish(desired_subject, junk, headers=signed(fleet.nats, junk))
            await state.put(subjects.host_key("ghost"), junk)  # server: host records
            await state.put(subjects.service_key("ghost", "shop", "web"), junk)  # server: services
        await state.put("not-a-drover-key", b"{}")

        server_drops = len(GARBAGE[1:]) * 3 + 1
        agent_drops = len(GARBAGE[1:]) * 2
        await eventually(
            lambda: (
                fleet.server is not None
                and fleet.server.counters.get("server.malformed_messages") >= server_drops
                and agent.counters.get("agent.malformed_messages") >= agent_drops
            )
        )
    finally:
        await nc.close()

    # Every loop still works: a restart goes through, results are recorded, state flows.
    before = await service_pid(fleet, "shop", "web")
    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})
    assert action["state"] == "succeeded"
    await eventually(lambda: _changed(fleet, before))
    assert "ghost" not in [h["host"] for h in await fleet.get("/api/v1/hosts")]
    assert not [k for k in agent.counters.snapshot() if k.startswith("loop_errors")]
    assert not [k for k in fleet.server.counters.snapshot() if k.startswith("loop_errors")]
    assert any("dropped" in r.getMessage() for r in caplog.records)


async def _changed(fleet: Fleet, before: int | None) -> bool:
    return await service_pid(fleet, "shop", "web") not in (None, before)
