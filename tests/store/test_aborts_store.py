"""Cancels that abort, in the system of record: recorded once and never undone, an abort per
running host committed with the halt and sent until the bus has it, and the host's own answer
taking the place of the server's `cancelled` — once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.model.action import ActionKind, HostOutcome
from drover.model.rollout import CancelRequest, RolloutState
from drover.model.strategy import Strategy
from drover.store.actions import AbortSend, Action, ActionStore, CancelChange, HostResult
from drover.store.audit import AuditLog
from tests.store.test_actions_store import T0, _pending

LATER = T0 + timedelta(seconds=5)


def _rollout(action_id: str = "r1") -> Action:
    """h1 and h2 sent and running, h3 not yet sent."""
    return Action(
        id=action_id,
        kind=ActionKind.RESTART,
        application="shop",
        services=[],
        requested_by="alice",
        created_at=T0,
        deadline=T0 + timedelta(minutes=10),
        hosts=[_pending("h1"), _pending("h2"), _pending("h3", 1, released=False)],
        strategy=Strategy(batch_size=2),
        rollout_state=RolloutState.RUNNING,
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ActionStore]:
    store = await ActionStore.open(database_url)
    yield store
    await store.close()


def _engine(store: ActionStore) -> AsyncEngine:
    engine: AsyncEngine = store._engine  # the audit is read through the store's own database
    return engine


async def test_a_plain_cancel_is_raised_to_an_abort_and_never_lowered_again(
    store: ActionStore,
) -> None:
    await store.create(_rollout())
    await store.mark_dispatched([("r1", "h1"), ("r1", "h2")], T0)
    plain, abort = CancelRequest(False, "olga"), CancelRequest(True, "rita")
    assert await store.request_cancel("r1", plain) is CancelChange.RECORDED
    assert await store.request_cancel("r1", plain) is CancelChange.REPEATED  # not acted on yet
    # The rollout halts; h1 and h2 go on running.
    await store.halt("r1", RolloutState.CANCELLED, "cancelled", {"h3": HostOutcome.SKIPPED}, T0)
    assert await store.request_cancel("r1", plain) is None  # nothing new to ask
    assert await store.request_cancel("r1", abort) is CancelChange.ESCALATED
    assert await store.request_cancel("r1", plain) is None  # the abort stays
    assert await store.request_cancel("r1", abort) is None  # and is asked once
    found = await store.get("r1")
    assert found is not None and found.cancel == abort


async def test_an_abort_reaches_hosts_still_running_after_a_stop_but_not_a_finished_rollout(
    store: ActionStore,
) -> None:
    await store.create(_rollout())
    await store.mark_dispatched([("r1", "h1"), ("r1", "h2")], T0)
    await store.halt("r1", RolloutState.STOPPED, "too many", {"h3": HostOutcome.SKIPPED}, T0)
    assert await store.request_cancel("r1", CancelRequest(False, "olga")) is None
    assert await store.request_cancel("r1", CancelRequest(True, "rita")) is CancelChange.RECORDED

    await store.create(_rollout("r2"))
    await store.halt("r2", RolloutState.CANCELLED, "cancelled", {"h3": HostOutcome.SKIPPED}, T0)
    for host in ("h1", "h2"):
        done = HostResult(host, HostOutcome.SUCCEEDED, 0, T0, T0, 0.1, "ok")
        assert await store.record_result("r2", done, T0)
    assert await store.request_cancel("r2", CancelRequest(True, "rita")) is None  # all answered
    assert await store.request_cancel("nope", CancelRequest(True, "rita")) is None


async def test_an_abort_is_committed_with_the_halt_and_due_until_the_bus_has_it(
    store: ActionStore,
) -> None:
    await store.create(_rollout())
    await store.mark_dispatched([("r1", "h1"), ("r1", "h2")], T0)
    await store.request_cancel("r1", CancelRequest(True, "rita"))
    # h2 answered between the decision and its record: it keeps its answer, and gets no abort.
    answered = HostResult("h2", HostOutcome.SUCCEEDED, 0, T0, T0, 0.1, "restarted")
    assert await store.record_result("r1", answered, T0)
    marks = {"h1": HostOutcome.CANCELLED, "h2": HostOutcome.CANCELLED, "h3": HostOutcome.SKIPPED}
    await store.halt("r1", RolloutState.CANCELLED, "cancelled", marks, T0, abort=("h1", "h2"))
    assert await store.aborts_to_send() == [AbortSend("r1", "h1", "rita", T0)]
    await store.mark_aborts_sent([], LATER)  # the bus was down: still due
    assert await store.aborts_to_send() == [AbortSend("r1", "h1", "rita", T0)]
    await store.mark_aborts_sent([("r1", "h1")], LATER)
    assert await store.aborts_to_send() == []
    # Another server process sent it too: the first mark stands, and is audited once.
    await store.mark_aborts_sent([("r1", "h1")], LATER + timedelta(seconds=1))
    found = await store.get("r1")
    assert found is not None
    assert [(h.host, h.outcome, h.abort_requested_at, h.abort_sent_at) for h in found.hosts] == [
        ("h1", HostOutcome.CANCELLED, T0, LATER),
        ("h2", HostOutcome.SUCCEEDED, None, None),
        ("h3", HostOutcome.SKIPPED, None, None),
    ]
    [sent] = await AuditLog(_engine(store)).query(kind="action.abort_sent")
    assert (sent.actor, sent.subject, sent.detail) == ("drover", "r1", {"hosts": ["h1"]})


async def test_the_hosts_answer_replaces_the_servers_cancelled_once(store: ActionStore) -> None:
    await store.create(_rollout())
    await store.mark_dispatched([("r1", "h1"), ("r1", "h2")], T0)
    marks = {"h1": HostOutcome.CANCELLED, "h2": HostOutcome.CANCELLED}
    await store.halt("r1", RolloutState.CANCELLED, "cancelled", marks, T0, abort=("h1", "h2"))
    killed = HostResult("h1", HostOutcome.CANCELLED, 143, T0, LATER, 5.0, "[aborted by rita]")
    finished = HostResult("h2", HostOutcome.SUCCEEDED, 0, T0, LATER, 5.0, "restarted")
    assert await store.record_result("r1", killed, LATER)
    assert await store.record_result("r1", finished, LATER)
    again = HostResult("h1", HostOutcome.FAILED, 1, T0, LATER, 5.0, "a second answer")
    assert not await store.record_result("r1", again, LATER)
    # An abort never sent to a host that answered first is not sent any more.
    assert await store.aborts_to_send() == []
    found = await store.get("r1")
    assert found is not None
    assert [(h.host, h.outcome, h.exit_code, h.output) for h in found.hosts] == [
        ("h1", HostOutcome.CANCELLED, 143, "[aborted by rita]"),
        ("h2", HostOutcome.SUCCEEDED, 0, "restarted"),
        ("h3", HostOutcome.PENDING, None, ""),
    ]


async def test_a_server_decision_without_an_abort_is_not_replaced(store: ActionStore) -> None:
    await store.create(_rollout())
    await store.mark_dispatched([("r1", "h1")], T0)
    await store.halt("r1", RolloutState.CANCELLED, "cancelled", {"h1": HostOutcome.CANCELLED}, T0)
    late = HostResult("h1", HostOutcome.SUCCEEDED, 0, T0, LATER, 5.0, "restarted")
    assert not await store.record_result("r1", late, LATER)
