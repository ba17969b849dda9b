"""Approval requests in the system of record: held actions, votes, release, rejection, expiry
and cancel, each change with its audit entry, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from drover.model.action import ActionKind, ActionState, HostOutcome
from drover.model.approval import (
    ApprovalPolicy,
    ApprovalState,
    Ballot,
    Counted,
    Decision,
    Refused,
    Subject,
    open_request,
)
from drover.model.rollout import RolloutState
from drover.model.strategy import Strategy
from drover.store.actions import Action, ActionStore, HostResult
from drover.store.approvals import ApprovalStore
from drover.store.audit import AuditLog
from drover.store.database import open_database

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OPEN_FOR = timedelta(hours=1)
LEADS = ApprovalPolicy(name="leads", required=2, from_groups=("ops-leads",), open_for_s=3600)


@dataclass
class Stores:
    actions: ActionStore
    approvals: ApprovalStore
    audit: AuditLog


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = await open_database(database_url)
    yield Stores(ActionStore(engine), ApprovalStore(engine), AuditLog(engine))
    await engine.dispose()


def held(action_id: str = "a1", *policies: ApprovalPolicy) -> Action:
    approval = open_request(
        action_id, Subject("shop", "production", "restart"), policies or (LEADS,), "rita", T0
    )
    return Action(
        id=action_id,
        kind=ActionKind.RESTART,
        application="shop",
        services=["web"],
        requested_by="rita",
        created_at=T0,
        deadline=T0 + OPEN_FOR + timedelta(minutes=5),
        hosts=[
            HostResult(h, HostOutcome.PENDING, None, None, None, None, "", n)
            for n, h in enumerate(["h1", "h2"])
        ],
        strategy=Strategy(batch_size=1, deadline_s=300),
        rollout_state=RolloutState.PENDING_APPROVAL,
        approval=approval,
    )


def approve(name: str, *groups: str) -> Ballot:
    return Ballot(name, frozenset(groups), Decision.APPROVE, "", via="token")


async def kinds(stores: Stores, action_id: str = "a1") -> list[str]:
    """The audit kinds about the action, oldest first."""
    return [e.kind for e in reversed(await stores.audit.query(subject=action_id))]


async def test_a_held_action_is_stored_with_its_request_and_nothing_is_due(stores: Stores) -> None:
    await stores.actions.create(held())
    found = await stores.actions.get("a1")
    assert found is not None and found.approval is not None
    assert (found.state, found.rollout_state, found.approval.state) == (
        ActionState.PENDING_APPROVAL,
        RolloutState.PENDING_APPROVAL,
        ApprovalState.PENDING,
    )
    assert found.approval == held().approval
    assert await stores.actions.undispatched() == []
    assert await stores.actions.in_progress() == []  # not driven: no batch is released
    assert await stores.approvals.find(ApprovalState.PENDING) == [found.approval]
    assert await kinds(stores) == ["approval.requested"]


async def test_the_second_approval_releases_the_action_and_its_deadline_counts_from_then(
    stores: Stores,
) -> None:
    await stores.actions.create(held())
    later = T0 + timedelta(minutes=20)
    first = await stores.approvals.vote("a1", approve("olga", "ops-leads"), T0)
    assert isinstance(first, Counted) and first.approval.state is ApprovalState.PENDING
    still = await stores.actions.get("a1")
    assert still is not None and still.rollout_state is RolloutState.PENDING_APPROVAL
    second = await stores.approvals.vote("a1", approve("otto", "ops-leads"), later)
    assert isinstance(second, Counted) and second.approval.state is ApprovalState.APPROVED
    released = await stores.actions.get("a1")
    assert released is not None and released.approval is not None
    assert (released.rollout_state, released.released_at, released.deadline) == (
        RolloutState.RUNNING,
        later,
        later + timedelta(seconds=300),
    )
    assert (released.approval.state, released.approval.decided_by) == (
        ApprovalState.APPROVED,
        "otto",
    )
    assert [(v.approver, v.groups, v.via) for v in released.approval.votes] == [
        ("olga", frozenset({"ops-leads"}), "token"),
        ("otto", frozenset({"ops-leads"}), "token"),
    ]
    assert [a.id for a in await stores.actions.in_progress()] == ["a1"]
    assert await kinds(stores) == [
        "approval.requested",
        "approval.approved",
        "approval.approved",
        "action.released",
    ]


async def test_a_refused_vote_leaves_no_trace(stores: Stores) -> None:
    await stores.actions.create(held())
    for attempt in (approve("rita", "ops-leads"), approve("mallory", "developers")):
        assert isinstance(await stores.approvals.vote("a1", attempt, T0), Refused)
    await stores.approvals.vote("a1", approve("olga", "ops-leads"), T0)
    replay = await stores.approvals.vote("a1", approve("olga", "ops-leads"), T0)
    assert isinstance(replay, Refused) and "one vote per person" in replay.reason
    found = await stores.approvals.get("a1")
    assert found is not None and [v.approver for v in found.votes] == ["olga"]
    assert await stores.approvals.vote("nope", approve("olga"), T0) is None


async def test_a_rejection_skips_every_host_and_records_the_reason(stores: Stores) -> None:
    await stores.actions.create(held())
    no = Ballot("olga", frozenset({"ops-leads"}), Decision.REJECT, "freeze week", via="session")
    assert isinstance(await stores.approvals.vote("a1", no, T0), Counted)
    found = await stores.actions.get("a1")
    assert found is not None and found.approval is not None
    assert (found.rollout_state, found.halt_reason, found.state) == (
        RolloutState.REJECTED,
        "rejected by olga: freeze week",
        ActionState.FAILED,
    )
    assert [(h.outcome, h.sent_at) for h in found.hosts] == [(HostOutcome.SKIPPED, None)] * 2
    assert (found.approval.state, found.approval.reason) == (ApprovalState.REJECTED, "freeze week")
    assert await stores.actions.in_progress() == []
    assert await kinds(stores) == ["approval.requested", "approval.rejected"]


async def test_a_request_not_decided_in_time_expires_once(stores: Stores) -> None:
    await stores.actions.create(held("a1"))
    await stores.actions.create(held("a2", LEADS.model_copy(update={"open_for_s": 7200})))
    assert await stores.approvals.expire_due(T0 + OPEN_FOR - timedelta(seconds=1)) == []
    due = T0 + OPEN_FOR
    assert await stores.approvals.expire_due(due) == ["a1"]
    assert await stores.approvals.expire_due(due) == []
    found = await stores.actions.get("a1")
    assert found is not None and found.approval is not None
    assert (found.rollout_state, found.approval.state, found.approval.decided_by) == (
        RolloutState.APPROVAL_EXPIRED,
        ApprovalState.EXPIRED,
        "drover",
    )
    assert {h.outcome for h in found.hosts} == {HostOutcome.SKIPPED}
    late = await stores.approvals.vote("a1", approve("olga", "ops-leads"), due)
    assert isinstance(late, Refused) and "expired" in late.reason
    assert await kinds(stores) == ["approval.requested", "approval.expired"]


async def test_a_pending_request_can_be_cancelled_once(stores: Stores) -> None:
    await stores.actions.create(held())
    assert await stores.approvals.cancel("a1", "rita", T0) is True
    assert await stores.approvals.cancel("a1", "rita", T0) is False
    found = await stores.actions.get("a1")
    assert found is not None and found.approval is not None
    assert (found.rollout_state, found.approval.state) == (
        RolloutState.CANCELLED,
        ApprovalState.CANCELLED,
    )
    assert {h.outcome for h in found.hosts} == {HostOutcome.SKIPPED}
    assert await kinds(stores) == ["approval.requested", "approval.cancelled"]


async def test_votes_cast_at_the_same_moment_by_two_servers_are_counted_one_after_the_other(
    database_url: str,
) -> None:
    servers = [await open_database(database_url) for _ in range(2)]
    try:
        first, second = (ApprovalStore(engine) for engine in servers)
        await ActionStore(servers[0]).create(held())
        both = await asyncio.gather(
            first.vote("a1", approve("olga", "ops-leads"), T0),
            second.vote("a1", approve("otto", "ops-leads"), T0),
        )
        assert all(isinstance(v, Counted) for v in both)
        found = await first.get("a1")
        assert found is not None and found.state is ApprovalState.APPROVED
        # the same person on both servers at once: one vote counts
        await ActionStore(servers[0]).create(held("a2"))
        twice = await asyncio.gather(
            first.vote("a2", approve("olga", "ops-leads"), T0),
            second.vote("a2", approve("olga", "ops-leads"), T0),
        )
        assert sorted(type(v).__name__ for v in twice) == ["Counted", "Refused"]
        released = await AuditLog(servers[0]).query(kind="action.released")
        assert [e.subject for e in released] == ["a1"]
    finally:
        for engine in servers:
            await engine.dispose()


async def test_pending_requests_come_soonest_deadline_first_so_a_limit_keeps_the_most_urgent(
    stores: Stores,
) -> None:
    """The inbox reads a bounded number of pending requests: they must be those that expire
    first, not the newest (with more pending than the bound, the oldest would never show)."""
    urgent = held("a-urgent")
    await stores.actions.create(urgent)
    later = held("a-later", LEADS.model_copy(update={"open_for_s": 7200}))
    assert later.approval is not None
    later = replace(later, approval=replace(later.approval, requested_at=T0 + timedelta(minutes=1)))
    await stores.actions.create(later)
    found = await stores.approvals.find(ApprovalState.PENDING, limit=1)
    assert [a.action_id for a in found] == ["a-urgent"]
    everything = await stores.approvals.find(limit=1)  # any state: newest first, as before
    assert [a.action_id for a in everything] == ["a-later"]


async def test_an_action_records_the_environment_it_was_requested_in(database_url: str) -> None:
    engine = await open_database(database_url)
    try:
        store = ActionStore(engine, environment_of=lambda application: "staging")
        plain = replace(held("a-plain"), approval=None, rollout_state=RolloutState.RUNNING)
        await store.create(plain)
        await store.create(held("a-held"))  # its request says production: what policies matched
        found = {a.id: a.environment for a in await store.recent()}
        assert found == {"a-plain": "staging", "a-held": "production"}
    finally:
        await engine.dispose()
