"""The whole loop: config → agent → NATS → server → API → action → result."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drover.bus import subjects
from drover.bus.messages import ActionRequest, encode
from drover.model.action import ActionKind
from tests.busauth import signed, superuser_client
from tests.conftest import eventually, starts
from tests.harness import Fleet

SETTLE = 1.0


def journal(fleet: Fleet, name: str) -> Path:
    return fleet.tmp / f"{name}.journal"


async def service_pid(fleet: Fleet, app: str, service: str) -> int | None:
    found = await fleet.get(f"/api/v1/applications/{app}")
    svc = next(s for s in found["services"] if s["name"] == service)
    pid = svc["hosts"][0]["pid"]
    return int(pid) if pid else None


async def run_action(fleet: Fleet, body: dict[str, Any]) -> dict[str, Any]:
    assert fleet.http is not None
    created = await fleet.http.post("/api/v1/actions", json=body)
    assert created.status_code == 202, created.text
    action_id = created.json()["id"]
    final: dict[str, Any] = {}

    async def done() -> bool:
        final.update(await fleet.get(f"/api/v1/actions/{action_id}"))
        return bool(final["state"] != "running")

    await eventually(done)
    return final


async def test_the_agent_runs_what_the_config_says_and_the_server_sees_it(fleet: Fleet) -> None:
    await fleet.start_agent("h1")
    await eventually(lambda: len(starts(journal(fleet, "web"))) == 1)

    async def all_running() -> bool:
        apps = await fleet.get("/api/v1/applications")
        return all(not s["drift"] for s in apps[0]["services"])

    await eventually(all_running)
    hosts = await fleet.get("/api/v1/hosts")
    assert [(h["host"], h["online"], len(h["services"])) for h in hosts] == [("h1", True, 2)]
    assert await service_pid(fleet, "shop", "web") == int(starts(journal(fleet, "web"))[0])


async def test_a_restart_through_the_api_changes_the_pid_and_is_recorded(
    fleet_on_each_database: Fleet,
) -> None:
    fleet = fleet_on_each_database
    await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    before = await service_pid(fleet, "shop", "web")

    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})

    assert action["state"] == "succeeded"
    [host] = action["hosts"]
    assert (host["host"], host["outcome"], host["exit_code"]) == ("h1", "succeeded", 0)
    # The new process writes its journal line once it is up, a moment after the result.
    await eventually(lambda: len(starts(journal(fleet, "web"))) == 2)
    after = int(starts(journal(fleet, "web"))[-1])
    assert after != before
    assert f"shop/web: restarted (pid {before} → {after})" in host["output"]
    await eventually(lambda: _equals(service_pid(fleet, "shop", "web"), after))
    assert len(starts(journal(fleet, "worker"))) == 1  # only the service asked for
    listed = await fleet.get("/api/v1/actions")
    assert [a["id"] for a in listed] == [action["id"]]


async def _equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_a_redelivered_action_is_answered_from_the_ledger_not_run_again(
    fleet: Fleet,
) -> None:
    agent = await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})
    assert action["state"] == "succeeded"
    await eventually(lambda: len(starts(journal(fleet, "web"))) == 2)

    # The same action id again, as JetStream would redeliver it (no de-duplication id).
    now = datetime.now(UTC)
    replay = ActionRequest(
        action_id=action["id"],
        host="h1",
        kind=ActionKind.RESTART,
        application="shop",
        services=["web"],
        requested_by="test",
        created_at=now,
        deadline=now + timedelta(minutes=5),
    )
    nc = await superuser_client(fleet.nats)
    try:
        js = nc.jetstream()
        payload = encode(replay)
        for _ in range(3):  # signed: a replay of what the server really sent
            await js.publish(
                subjects.action_subject("h1"), payload, headers=signed(fleet.nats, payload)
            )
        await eventually(lambda: _stream_empty(js))
    finally:
        await nc.close()
    await asyncio.sleep(SETTLE)  # time for a (wrong) extra start to reach the journal

    assert len(starts(journal(fleet, "web"))) == 2  # really executed once
    assert agent.executor.executions == 1
    again = await fleet.get(f"/api/v1/actions/{action['id']}")
    assert again["hosts"] == action["hosts"]  # the first result stands


async def _stream_empty(js: Any) -> bool:
    info = await js.stream_info(subjects.ACTIONS_STREAM)
    return bool(info.state.messages == 0)


async def test_an_action_past_its_deadline_expires_and_never_runs(fleet: Fleet) -> None:
    await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    action = await run_action(
        fleet, {"kind": "restart", "application": "shop", "deadline_s": 0.001}
    )
    assert action["state"] == "failed"
    assert [h["outcome"] for h in action["hosts"]] == ["expired"]
    await asyncio.sleep(SETTLE)
    assert len(starts(journal(fleet, "web"))) == 1


async def test_an_offline_host_gets_its_action_on_reconnect(fleet: Fleet) -> None:
    # h1 is named in the config, so it can be targeted before its agent ever connected.
    assert fleet.http is not None
    created = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "worker"}
    )
    assert created.status_code == 202
    assert [h["outcome"] for h in created.json()["hosts"]] == ["pending"]  # sent in background

    await fleet.start_agent("h1")

    async def answered() -> bool:
        found = await fleet.get(f"/api/v1/actions/{created.json()['id']}")
        return bool(found["state"] == "succeeded")

    await eventually(answered)


async def test_an_action_begun_before_a_crash_is_reported_interrupted(fleet: Fleet) -> None:
    from drover.agent.ledger import Ledger

    assert fleet.http is not None
    created = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "web"}
    )
    action_id = created.json()["id"]
    # As if the agent had written the id to its ledger and died before finishing.
    Ledger(fleet.tmp / "agents" / "h1" / "ledger.jsonl").begin(action_id)

    await fleet.start_agent("h1")

    async def concluded() -> bool:
        found = await fleet.get(f"/api/v1/actions/{action_id}")
        return bool(found["state"] != "running")

    await eventually(concluded)
    found = await fleet.get(f"/api/v1/actions/{action_id}")
    assert [h["outcome"] for h in found["hosts"]] == ["interrupted"]
    await asyncio.sleep(SETTLE)
    assert len(starts(journal(fleet, "web"))) == 1  # started by the desired state, never restarted
