"""Approval requests and their votes, in the system of record.

A request is inserted with its action, in the action's transaction (`insert_request`, called by
`ActionStore.create`). Every later change is one transaction holding the change, its audit entry
and what it does to the action — released, or its hosts skipped — and each is guarded by the
state it starts from (`WHERE state = 'pending'`). So several server processes may vote, expire
and cancel at once: a request leaves `pending` once, and the action follows it.

A vote first touches its request's row: that takes the row's lock (PostgreSQL) or the database's
write lock (SQLite) before the votes are read, so two approvers voting at the same moment are
counted one after the other, and the second sees the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.model.action import HostOutcome
from drover.model.approval import (
    Approval,
    ApprovalPolicy,
    ApprovalState,
    Ballot,
    Counted,
    Decision,
    Refused,
    Subject,
    Vote,
    judge,
)
from drover.model.rollout import RolloutState
from drover.model.strategy import Strategy
from drover.store.audit import AuditEntry, write
from drover.store.tables import action_hosts, actions, approval_requests, approval_votes

_PENDING = ApprovalState.PENDING.value
# What the action becomes when its request closes without approval.
_ACTION_STATE = {
    ApprovalState.REJECTED: RolloutState.REJECTED,
    ApprovalState.EXPIRED: RolloutState.APPROVAL_EXPIRED,
    ApprovalState.CANCELLED: RolloutState.CANCELLED,
}


async def insert_request(conn: AsyncConnection, approval: Approval) -> None:
    """Record a new request, with its `approval.requested` entry, in the caller's transaction
    (the one that creates its action)."""
    await conn.execute(
        insert(approval_requests).values(
            action_id=approval.action_id,
            state=approval.state.value,
            application=approval.subject.application,
            environment=approval.subject.environment,
            kind=approval.subject.kind,
            policies=[p.model_dump(mode="json") for p in approval.policies],
            requested_by=approval.requested_by,
            requested_at=approval.requested_at,
            open_until=approval.open_until,
            updated_at=approval.requested_at,
        )
    )
    detail = {
        "policies": [p.name for p in approval.policies],
        "required": {p.name: p.required for p in approval.policies},
        "open_until": approval.open_until.isoformat(),
    }
    entry = AuditEntry(
        approval.requested_by,
        "approval.requested",
        approval.action_id,
        approval.requested_at,
        detail,
    )
    await write(conn, entry)


async def load_approvals(conn: AsyncConnection, action_ids: Sequence[str]) -> dict[str, Approval]:
    """The requests of these actions (those that have one), with their votes."""
    if not action_ids:
        return {}
    ids = list(action_ids)
    votes: dict[str, list[Vote]] = {}
    for row in await conn.execute(
        select(approval_votes)
        .where(approval_votes.c.action_id.in_(ids))
        .order_by(approval_votes.c.at, approval_votes.c.approver)
    ):
        votes.setdefault(row.action_id, []).append(
            Vote(
                approver=row.approver,
                decision=Decision(row.decision),
                at=row.at,
                comment=row.comment,
                via=row.via,
                groups=frozenset(row.groups),
            )
        )
    found = await conn.execute(
        select(approval_requests).where(approval_requests.c.action_id.in_(ids))
    )
    return {row.action_id: _approval(row, votes.get(row.action_id, [])) for row in found}


def _approval(row: Any, votes: list[Vote]) -> Approval:
    return Approval(
        action_id=row.action_id,
        subject=Subject(row.application, row.environment, row.kind),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        open_until=row.open_until,
        policies=tuple(ApprovalPolicy.model_validate(p) for p in row.policies),
        votes=tuple(votes),
        state=ApprovalState(row.state),
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        reason=row.reason,
    )


class _Undo(Exception):
    """Leaves a vote's transaction without a trace: the vote was refused."""

    def __init__(self, refused: Refused) -> None:
        self.refused = refused


class ApprovalStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, action_id: str) -> Approval | None:
        async with self._engine.connect() as conn:
            return (await load_approvals(conn, [action_id])).get(action_id)

    async def find(self, state: ApprovalState | None = None, limit: int = 500) -> list[Approval]:
        """Requests in `state` (any state: None), newest first; pending ones soonest deadline
        first, so that the `limit` kept are the ones most in need of a decision (the inbox),
        not the newest: with more than `limit` pending, the oldest would never be seen."""
        query = select(approval_requests.c.action_id)
        if state is not None:
            query = query.where(approval_requests.c.state == state.value)
        if state is ApprovalState.PENDING:
            query = query.order_by(approval_requests.c.open_until, approval_requests.c.action_id)
        else:
            query = query.order_by(
                approval_requests.c.requested_at.desc(), approval_requests.c.action_id
            )
        query = query.limit(limit)
        async with self._engine.connect() as conn:
            ids = list((await conn.execute(query)).scalars())
            found = await load_approvals(conn, ids)
        return [found[i] for i in ids]

    async def vote(self, action_id: str, ballot: Ballot, now: datetime) -> Refused | Counted | None:
        """Cast `ballot`: Counted (recorded, the request and the action changed with it),
        Refused (nothing recorded), or None when the action has no approval request."""
        try:
            async with self._engine.begin() as conn:
                locked = await conn.execute(
                    update(approval_requests)
                    .where(approval_requests.c.action_id == action_id)
                    .values(updated_at=now)
                )
                if not locked.rowcount:
                    return None
                approval = (await load_approvals(conn, [action_id]))[action_id]
                verdict = judge(approval, ballot, now)
                if isinstance(verdict, Refused):
                    raise _Undo(verdict)
                await _record(conn, verdict, now)
                return verdict
        except _Undo as undo:
            return undo.refused

    async def cancel(self, action_id: str, by: str, now: datetime) -> bool:
        """Withdraw a pending request: its action is cancelled and never runs. False if there
        is no pending request for it."""
        async with self._engine.begin() as conn:
            why = f"cancelled by {by} before it was approved"
            if not await _close(conn, action_id, ApprovalState.CANCELLED, by, why, why, now):
                return False
            await write(conn, AuditEntry(by, "approval.cancelled", action_id, now, {}))
        return True

    async def expire_due(self, now: datetime, limit: int = 100) -> list[str]:
        """Close every pending request past its open time, each in its own transaction: its
        action never runs. The ids of those this call expired."""
        due = (
            select(approval_requests.c.action_id, approval_requests.c.open_until)
            .where(approval_requests.c.state == _PENDING)
            .where(approval_requests.c.open_until <= now)
            .order_by(approval_requests.c.open_until)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = list(await conn.execute(due))
        expired = []
        for row in rows:
            why = f"not approved by {row.open_until.isoformat(timespec='seconds')}"
            halt = f"approval expired: {why}"
            closed = ApprovalState.EXPIRED
            async with self._engine.begin() as conn:
                if await _close(conn, row.action_id, closed, "drover", why, halt, now):
                    detail = {"open_until": row.open_until.isoformat()}
                    entry = AuditEntry("drover", "approval.expired", row.action_id, now, detail)
                    await write(conn, entry)
                    expired.append(row.action_id)
        return expired


async def _record(conn: AsyncConnection, counted: Counted, now: datetime) -> None:
    """A vote that counts, and what it leads to: nothing yet, a release, or a rejection."""
    vote, approval = counted.vote, counted.approval
    await conn.execute(
        insert(approval_votes).values(
            action_id=approval.action_id,
            approver=vote.approver,
            decision=vote.decision.value,
            comment=vote.comment,
            at=vote.at,
            via=vote.via,
            groups=sorted(vote.groups),
        )
    )
    progress = {
        p.policy.name: f"{len(p.approved_by)}/{p.policy.required}" for p in approval.progress()
    }
    detail: dict[str, Any] = {"via": vote.via, "groups": sorted(vote.groups)}
    if vote.decision is Decision.APPROVE:
        detail |= {"comment": vote.comment, "progress": progress}
        await write(
            conn, AuditEntry(vote.approver, "approval.approved", approval.action_id, now, detail)
        )
        if approval.state is ApprovalState.APPROVED:
            await _release(conn, approval, now)
    else:
        detail |= {"reason": vote.comment}
        await write(
            conn, AuditEntry(vote.approver, "approval.rejected", approval.action_id, now, detail)
        )
        halt = f"rejected by {vote.approver}: {vote.comment}"
        closed = ApprovalState.REJECTED
        await _close(conn, approval.action_id, closed, vote.approver, vote.comment, halt, now)


async def _release(conn: AsyncConnection, approval: Approval, now: datetime) -> None:
    """The request is approved: the action's rollout begins now, and its deadline counts from
    now (a person's approval may well take longer than the action's whole deadline)."""
    await conn.execute(
        update(approval_requests)
        .where(approval_requests.c.action_id == approval.action_id)
        .where(approval_requests.c.state == _PENDING)
        .values(state=ApprovalState.APPROVED.value, decided_at=now, decided_by=approval.decided_by)
    )
    strategy = (
        await conn.execute(select(actions.c.strategy).where(actions.c.id == approval.action_id))
    ).scalar_one()
    deadline_s = Strategy.model_validate(strategy or {}).deadline_s
    released = await conn.execute(
        update(actions)
        .where(actions.c.id == approval.action_id)
        .where(actions.c.rollout_state == RolloutState.PENDING_APPROVAL.value)
        .values(
            rollout_state=RolloutState.RUNNING.value,
            released_at=now,
            deadline=now + timedelta(seconds=deadline_s),
        )
    )
    if released.rowcount:
        approvers = [v.approver for v in approval.votes if v.decision is Decision.APPROVE]
        detail = {"approved_by": approvers, "deadline_s": deadline_s}
        await write(
            conn,
            AuditEntry(
                str(approval.decided_by), "action.released", approval.action_id, now, detail
            ),
        )


async def _close(
    conn: AsyncConnection,
    action_id: str,
    state: ApprovalState,
    by: str,
    reason: str,
    halt_reason: str,
    now: datetime,
) -> bool:
    """End a pending request without approval (`reason` on the request, `halt_reason` on the
    action), and its action with it: held hosts are `skipped`, since they were never sent.
    False if the request was no longer pending."""
    closed = await conn.execute(
        update(approval_requests)
        .where(approval_requests.c.action_id == action_id)
        .where(approval_requests.c.state == _PENDING)
        .values(state=state.value, decided_at=now, decided_by=by, reason=reason, updated_at=now)
    )
    if not closed.rowcount:
        return False
    await conn.execute(
        update(actions)
        .where(actions.c.id == action_id)
        .where(actions.c.rollout_state == RolloutState.PENDING_APPROVAL.value)
        .values(rollout_state=_ACTION_STATE[state].value, halt_reason=halt_reason)
    )
    await conn.execute(
        update(action_hosts)
        .where(action_hosts.c.action_id == action_id)
        .where(action_hosts.c.outcome == HostOutcome.PENDING.value)
        .where(action_hosts.c.sent_at.is_(None))
        .values(
            outcome=HostOutcome.SKIPPED.value, output=halt_reason, finished_at=now, updated_at=now
        )
    )
    return True
