"""Signed actions: an agent runs only what the server signed, for its host, before its deadline.

Each request here is put on the host's own actions subject by a client that may publish
anything (as someone holding a stolen server credential could): unsigned, signed by another
key, signed and then changed, signed for another host. The agent refuses each — it never runs
— logs and counts it, and reports it; the server puts the refusal on the audit trail. A replay
of a signed action is answered from the ledger (tests/e2e/test_actions.py), a late one expires.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drover.bus import subjects
from drover.bus.messages import ActionRequest, DesiredService, DesiredState, encode
from drover.bus.trust import signing
from drover.bus.trust.keys import KeyPair, Kind
from drover.model.action import ActionKind
from drover.model.status import TargetStatus
from tests.busauth import signed, superuser_client
from tests.conftest import eventually, starts
from tests.e2e.test_actions import journal, run_action, service_pid
from tests.harness import Fleet

pytestmark = pytest.mark.authz


def restart(
    action_id: str, host: str = "h1", deadline: timedelta = timedelta(minutes=5)
) -> ActionRequest:
    now = datetime.now(UTC)
    return ActionRequest(
        action_id=action_id,
        host=host,
        kind=ActionKind.RESTART,
        application="shop",
        services=["web"],
        requested_by="mallory",
        created_at=now,
        deadline=now + deadline,
    )


async def put(fleet: Fleet, payload: bytes, headers: dict[str, str] | None) -> None:
    client = await superuser_client(fleet.nats)
    try:
        await client.jetstream().publish(subjects.action_subject("h1"), payload, headers=headers)
    finally:
        await client.close()


async def refusals(fleet: Fleet) -> dict[str, str]:
    """Action id → why, of every refusal the server put on the audit trail."""
    entries: list[dict[str, Any]] = await fleet.get(
        "/api/v1/audit?kind=action.refused_by_agent&limit=100"
    )
    return {e["subject"]: e["detail"]["refused"] for e in entries}


async def test_unsigned_forged_tampered_and_misaddressed_actions_never_run(fleet: Fleet) -> None:
    agent = await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    web = journal(fleet, "web")
    assert len(starts(web)) == 1

    unsigned = encode(restart("forged-unsigned"))
    await put(fleet, unsigned, None)

    stranger = KeyPair.create(Kind.SERVER)
    by_another_key = encode(restart("forged-other-key"))
    await put(fleet, by_another_key, signing.sign(stranger, by_another_key))

    original = encode(restart("forged-tampered"))
    headers = signed(fleet.nats, original)
    tampered = original.replace(b'"services":["web"]', b'"services":["worker"]')
    assert tampered != original
    await put(fleet, tampered, headers)

    elsewhere = encode(restart("forged-misaddressed", host="h2"))
    await put(fleet, elsewhere, signed(fleet.nats, elsewhere))

    async def all_refused() -> dict[str, str] | None:
        found = await refusals(fleet)
        return found if len(found) == 4 else None

    await eventually(all_refused)
    found = await refusals(fleet)
    assert found["forged-unsigned"] == "unsigned"
    assert found["forged-other-key"].startswith("signature does not match")
    assert found["forged-tampered"].startswith("signature does not match")
    assert found["forged-misaddressed"] == "addressed to host h2, not this one"
    assert agent.counters.get("agent.refused_requests") == 4
    assert agent.executor.executions == 0
    await asyncio.sleep(1.0)
    assert len(starts(web)) == 1, "a refused action ran"
    for action_id in found:  # none of them is in the ledger: their ids are not to be trusted
        assert agent.ledger.lookup(action_id) is None

    # What the server signs still runs.
    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})
    assert action["state"] == "succeeded"
    await eventually(lambda: len(starts(web)) == 2)


async def test_a_signed_action_past_its_deadline_expires_and_never_runs(fleet: Fleet) -> None:
    agent = await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    late = encode(restart("late-one", deadline=timedelta(seconds=-1)))
    await put(fleet, late, signed(fleet.nats, late))
    await eventually(lambda: agent.ledger.lookup("late-one") is not None)
    seen = agent.ledger.lookup("late-one")
    assert seen is not None and seen.result is not None
    assert seen.result.outcome == "expired"
    assert agent.executor.executions == 0
    assert len(starts(journal(fleet, "web"))) == 1


async def test_a_desired_state_the_server_did_not_sign_or_an_older_one_changes_nothing(
    fleet: Fleet,
) -> None:
    agent = await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    assert agent.desired.current is not None and agent.desired.current.issued_at is not None
    real = agent.desired.current
    assert real.issued_at is not None
    evil = DesiredState(
        host="h1",
        revision="evil",
        services=[
            DesiredService(
                application="shop",
                service="web",
                provider="process",
                target=TargetStatus.RUNNING,
                command=["sh", "-c", "echo pwned > /tmp/pwned"],
            )
        ],
    )
    subject = subjects.kv_subject(subjects.DESIRED_BUCKET, "h1")
    unsigned = encode(evil.model_copy(update={"issued_at": datetime.now(UTC)}))
    stale = encode(evil.model_copy(update={"issued_at": real.issued_at - timedelta(hours=1)}))
    elsewhere = encode(evil.model_copy(update={"host": "h2", "issued_at": datetime.now(UTC)}))
    client = await superuser_client(fleet.nats)
    try:
        js = client.jetstream()
        # One at a time: the bucket keeps only a key's last value, so one written over before
        # the agent fetched it would never reach it (CI saw the stale one skipped so).
        await js.publish(subject, unsigned)
        await eventually(lambda: agent.counters.get("agent.refused_desired") == 1)
        await js.publish(subject, stale, headers=signed(fleet.nats, stale))
        await eventually(lambda: agent.counters.get("agent.refused_desired") == 2)
        await js.publish(subject, elsewhere, headers=signed(fleet.nats, elsewhere))
        await eventually(lambda: agent.counters.get("agent.foreign_desired") == 1)
    finally:
        await client.close()
    assert agent.desired.current.revision == real.revision
