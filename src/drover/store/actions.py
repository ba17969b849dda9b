"""Actions and their per-host results, in the system of record.

An action is committed here — with one row per target host, `pending` — before anything is
sent. The dispatcher marks a row `dispatched` once the bus has stored the request; a result
moves it to a final outcome exactly once (a second result for the same host is ignored).

The server may decide a host's outcome before the host answers (expired, cancelled by an
abort); the host's own result, when it comes, then replaces that decision once — see
`record_result`. An abort is committed here with the halt that decides it, and sent by the
dispatcher from here: what the bus has not stored is sent again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Update, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.model.action import NO_ANSWER, ActionKind, ActionState, HostOutcome, action_state
from drover.model.approval import Approval
from drover.model.command import CommandInvocation
from drover.model.rollout import CancelRequest, RolloutState
from drover.model.strategy import Strategy
from drover.store.approvals import insert_request, load_approvals
from drover.store.audit import AuditEntry, write, write_many
from drover.store.database import open_database
from drover.store.tables import action_hosts, actions

_OPEN = [HostOutcome.PENDING.value, HostOutcome.DISPATCHED.value]
# Halted rollouts whose hosts still running a cancel may yet abort.
_ABORTABLE_AFTER = [
    RolloutState.STOPPED.value,
    RolloutState.CANCELLED.value,
    RolloutState.EXPIRED.value,
]


@dataclass(frozen=True)
class Dispatch:
    """One action request for one host, as the dispatcher sends it."""

    action_id: str
    host: str
    kind: ActionKind
    application: str
    services: list[str]
    requested_by: str
    created_at: datetime
    deadline: datetime
    command: CommandInvocation | None = None
    correlation: str = ""


@dataclass(frozen=True)
class HostResult:
    host: str
    outcome: HostOutcome
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    output: str
    batch: int = 0  # its place in the rollout's plan
    sent_at: datetime | None = None  # released for dispatch; None: its batch is not due yet
    deadline: datetime | None = None  # of its request; None: the action's
    output_chunks: int | None = None  # a command's: the chunks its output was sent in
    abort_requested_at: datetime | None = None  # a cancel decided to abort it (then `cancelled`)
    abort_sent_at: datetime | None = None  # the bus stored that abort


@dataclass(frozen=True)
class AbortSend:
    """One abort for one host, as the dispatcher sends it."""

    action_id: str
    host: str
    requested_by: str
    requested_at: datetime


class CancelChange(StrEnum):
    """What a cancel changed (store.request_cancel): None when it changed nothing."""

    RECORDED = "recorded"  # the first cancel of this rollout
    ESCALATED = "escalated"  # a cancel that let running hosts finish now aborts them
    REPEATED = "repeated"  # asked again before the first was acted on; nothing new


@dataclass(frozen=True)
class Action:
    id: str
    kind: ActionKind
    application: str
    services: list[str]
    requested_by: str
    created_at: datetime
    deadline: datetime
    hosts: list[HostResult]
    strategy: Strategy | None = None  # None: from before rollouts (sent whole)
    rollout_state: RolloutState | None = None
    halt_reason: str | None = None
    cancel: CancelRequest | None = None
    # Four eyes: when its rollout began (None: when requested), and its approval, if it needs one.
    released_at: datetime | None = None
    approval: Approval | None = None
    command: CommandInvocation | None = None  # kind `command`: which, with what, rendered how
    # The application's environment when it was requested (None: from before it was recorded).
    environment: str | None = None
    # The X-Request-Id of the request that made it, carried to the agents and back ("": none).
    correlation: str = ""

    @property
    def state(self) -> ActionState:
        if self.rollout_state is RolloutState.PENDING_APPROVAL:
            return ActionState.PENDING_APPROVAL  # its hosts are pending, but none is running
        return action_state(h.outcome for h in self.hosts)


class ActionStore:
    def __init__(
        self,
        engine: AsyncEngine,
        environment_of: Callable[[str], str | None] = lambda application: None,
    ) -> None:
        self._engine = engine
        # The application's environment in the active config: recorded with each new action.
        self._environment_of = environment_of

    @classmethod
    async def open(cls, url: str) -> ActionStore:
        """An ActionStore with an engine of its own (closed by `close`)."""
        return cls(await open_database(url))

    async def outcomes_since(
        self, since: datetime, applications: Sequence[str] = ()
    ) -> dict[str, int]:
        """How many host results of each outcome finished at `since` or later (of these
        applications' actions, or all)."""
        query = (
            select(action_hosts.c.outcome, func.count())
            .select_from(action_hosts.join(actions, actions.c.id == action_hosts.c.action_id))
            .where(action_hosts.c.finished_at >= since)
            .group_by(action_hosts.c.outcome)
        )
        if applications:
            query = query.where(actions.c.application.in_(list(applications)))
        async with self._engine.connect() as conn:
            return {outcome: count for outcome, count in await conn.execute(query)}

    async def close(self) -> None:
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _change(self, audit: AuditEntry | None) -> AsyncIterator[AsyncConnection]:
        """A transaction that records `audit` along with whatever the caller changes in it."""
        async with self._engine.begin() as conn:
            if audit is not None:
                await write(conn, audit)
            yield conn

    async def create(self, action: Action, audit: AuditEntry | None = None) -> None:
        async with self._change(audit) as conn:
            await conn.execute(
                insert(actions).values(
                    id=action.id,
                    kind=action.kind.value,
                    application=action.application,
                    services=action.services,
                    requested_by=action.requested_by,
                    created_at=action.created_at,
                    deadline=action.deadline,
                    strategy=action.strategy.model_dump(mode="json") if action.strategy else None,
                    rollout_state=action.rollout_state.value if action.rollout_state else None,
                    command=action.command.model_dump(mode="json") if action.command else None,
                    environment=_environment(action, self._environment_of),
                    correlation=action.correlation,
                )
            )
            await conn.execute(
                insert(action_hosts),
                [
                    {
                        "action_id": action.id,
                        "host": h.host,
                        "outcome": h.outcome.value,
                        "output": "",
                        "updated_at": action.created_at,
                        "batch": h.batch,
                        "sent_at": h.sent_at,
                        "deadline": h.deadline,
                        "output_open": action.command is not None,
                    }
                    for h in action.hosts
                ],
            )
            if action.approval is not None:
                await insert_request(conn, action.approval)

    async def undispatched(self, limit: int = 1000) -> list[Dispatch]:
        """Requests released (their batch is due) but not yet handed to the bus, oldest first."""
        query = (
            select(actions, action_hosts.c.host, action_hosts.c.deadline.label("host_deadline"))
            .join(action_hosts, action_hosts.c.action_id == actions.c.id)
            .where(action_hosts.c.outcome == HostOutcome.PENDING.value)
            .where(action_hosts.c.sent_at.is_not(None))
            .order_by(actions.c.created_at, actions.c.id, action_hosts.c.host)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [
                Dispatch(
                    action_id=row.id,
                    host=row.host,
                    kind=ActionKind(row.kind),
                    application=row.application,
                    services=list(row.services),
                    requested_by=row.requested_by,
                    created_at=row.created_at,
                    deadline=row.host_deadline or row.deadline,
                    command=_command(row.command),
                    correlation=row.correlation,
                )
                for row in await conn.execute(query)
            ]

    async def release(
        self,
        action_id: str,
        hosts: Sequence[str],
        now: datetime,
        deadline: datetime,
        audit: AuditEntry | None = None,
    ) -> None:
        """Let the dispatcher send these hosts' requests, each with `deadline`."""
        async with self._change(audit) as conn:
            # Only hosts still unsent and pending, of a rollout still running and not cancelled:
            # a halt or cancel recorded meanwhile wins.
            going = select(actions.c.id).where(
                actions.c.id == action_id,
                actions.c.rollout_state == RolloutState.RUNNING.value,
                actions.c.cancel.is_(None),
            )
            await conn.execute(
                update(action_hosts)
                .where(action_hosts.c.action_id == action_id, action_hosts.c.host.in_(hosts))
                .where(action_hosts.c.sent_at.is_(None))
                .where(action_hosts.c.outcome == HostOutcome.PENDING.value)
                .where(action_hosts.c.action_id.in_(going.scalar_subquery()))
                .values(sent_at=now, deadline=deadline, updated_at=now)
            )

    async def mark(
        self,
        action_id: str,
        marks: Mapping[str, HostOutcome],
        why: str,
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> None:
        """Give hosts still open a final outcome the server decided (skipped, expired, ...)."""
        async with self._change(audit) as conn:
            for host, outcome in marks.items():
                await conn.execute(_mark(action_id, host, outcome, why, now))

    async def halt(
        self,
        action_id: str,
        state: RolloutState,
        reason: str,
        marks: Mapping[str, HostOutcome],
        now: datetime,
        audit: AuditEntry | None = None,
        abort: Sequence[str] = (),
    ) -> None:
        """Record a halt: the rollout's new state and its hosts' outcomes, together. Each host
        of `abort` still open is also given an abort to send (`aborts_to_send`); one that
        answered meanwhile keeps its answer and gets none."""
        async with self._change(audit) as conn:
            await conn.execute(
                update(actions)
                .where(actions.c.id == action_id)
                .values(rollout_state=state.value, halt_reason=reason)
            )
            for host, outcome in marks.items():
                await conn.execute(
                    _mark(action_id, host, outcome, reason, now, abort=host in abort)
                )

    async def set_rollout_state(
        self,
        action_id: str,
        state: RolloutState,
        reason: str | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        async with self._change(audit) as conn:
            values: dict[str, Any] = {"rollout_state": state.value}
            if reason is not None:
                values["halt_reason"] = reason
            await conn.execute(update(actions).where(actions.c.id == action_id).values(**values))

    async def request_cancel(
        self, action_id: str, cancel: CancelRequest, audit: AuditEntry | None = None
    ) -> CancelChange | None:
        """Record a cancel of a rollout still running, or an abort of hosts still running after
        the rollout halted (a cancel that let them finish, a stop, an expiry). None: nothing to
        record — no such action, nothing left to cancel, or what was asked is in force already.
        An abort once asked stays asked: a later cancel without it does not undo it."""
        async with self._engine.begin() as conn:
            # Take the row's lock (PostgreSQL) or the database's write lock (SQLite) before
            # reading the cancel in force, so two cancels at once cannot lose an abort.
            locked = await conn.execute(
                update(actions).where(actions.c.id == action_id).values(cancel=actions.c.cancel)
            )
            if not locked.rowcount:
                return None
            row = (
                await conn.execute(
                    select(actions.c.rollout_state, actions.c.cancel).where(
                        actions.c.id == action_id
                    )
                )
            ).one()
            before = CancelRequest(**row.cancel) if row.cancel else None
            adds_abort = cancel.abort_running and not (before and before.abort_running)
            change: CancelChange
            if row.rollout_state == RolloutState.RUNNING.value:
                if before is None:
                    change = CancelChange.RECORDED
                elif adds_abort:
                    change = CancelChange.ESCALATED
                else:
                    return CancelChange.REPEATED
            elif (
                adds_abort
                and row.rollout_state in _ABORTABLE_AFTER
                and await _sent_and_open(conn, action_id)
            ):
                change = CancelChange.ESCALATED if before else CancelChange.RECORDED
            else:
                return None
            # Written only for a first cancel or one that adds the abort: never a downgrade.
            await conn.execute(
                update(actions)
                .where(actions.c.id == action_id)
                .values(
                    cancel={
                        "abort_running": cancel.abort_running,
                        "requested_by": cancel.requested_by,
                    }
                )
            )
            if audit is not None:
                await write(conn, audit)
        return change

    async def aborts_to_send(self, limit: int = 1000) -> list[AbortSend]:
        """Aborts decided but not yet stored by the bus, oldest first; none for a host that has
        answered meanwhile (its answer stands)."""
        query = (
            select(
                action_hosts.c.action_id,
                action_hosts.c.host,
                action_hosts.c.abort_requested_at,
                actions.c.cancel,
            )
            .join(actions, actions.c.id == action_hosts.c.action_id)
            .where(action_hosts.c.abort_requested_at.is_not(None))
            .where(action_hosts.c.abort_sent_at.is_(None))
            .where(action_hosts.c.answered_at.is_(None))
            .order_by(action_hosts.c.abort_requested_at, action_hosts.c.action_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [
                AbortSend(
                    row.action_id,
                    row.host,
                    CancelRequest(**row.cancel).requested_by if row.cancel else "",
                    row.abort_requested_at,
                )
                for row in await conn.execute(query)
            ]

    async def mark_aborts_sent(self, sent: Sequence[tuple[str, str]], now: datetime) -> None:
        """(action id, host) pairs whose abort the bus has stored; audited per action, once
        per host (another server process may have sent and marked the same abort)."""
        if not sent:
            return
        async with self._engine.begin() as conn:
            marked: dict[str, list[str]] = {}
            for action_id, host in sent:
                done = await conn.execute(
                    update(action_hosts)
                    .where(action_hosts.c.action_id == action_id, action_hosts.c.host == host)
                    .where(action_hosts.c.abort_sent_at.is_(None))
                    .values(abort_sent_at=now)
                )
                if done.rowcount:
                    marked.setdefault(action_id, []).append(host)
            for action_id, hosts in marked.items():
                entry = AuditEntry("drover", "action.abort_sent", action_id, now, {"hosts": hosts})
                await write(conn, entry)

    async def in_progress(self) -> list[Action]:
        """Rollouts still sending, or with hosts still to answer."""
        open_hosts = select(action_hosts.c.action_id).where(action_hosts.c.outcome.in_(_OPEN))
        return await self._load(
            select(actions)
            .where(actions.c.strategy.is_not(None))
            # held for approval: nothing to drive until it is released
            .where(actions.c.rollout_state.is_distinct_from(RolloutState.PENDING_APPROVAL.value))
            .where(
                (actions.c.rollout_state == RolloutState.RUNNING.value)
                | actions.c.id.in_(open_hosts.scalar_subquery())
            )
            .order_by(actions.c.created_at, actions.c.id)
        )

    async def mark_dispatched(self, sent: list[tuple[str, str]], now: datetime) -> None:
        """(action id, host) pairs now on the bus; one transaction for all of them."""
        if not sent:
            return
        async with self._engine.begin() as conn:
            by_action: dict[str, list[str]] = {}
            for action_id, host in sent:
                by_action.setdefault(action_id, []).append(host)
            for action_id, hosts in by_action.items():
                entry = AuditEntry("drover", "action.dispatched", action_id, now, {"hosts": hosts})
                await write(conn, entry)
            for action_id, host in sent:
                await conn.execute(
                    update(action_hosts)
                    .where(action_hosts.c.action_id == action_id, action_hosts.c.host == host)
                    .where(action_hosts.c.outcome == HostOutcome.PENDING.value)
                    .values(outcome=HostOutcome.DISPATCHED.value, updated_at=now)
                )

    async def expire_overdue(self, cutoff: datetime, now: datetime) -> int:
        """Hosts that never answered an action whose deadline was before `cutoff` are expired."""
        overdue = select(actions.c.id).where(actions.c.deadline < cutoff)
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(action_hosts)
                .where(
                    action_hosts.c.outcome.in_(_OPEN),
                    action_hosts.c.action_id.in_(overdue.scalar_subquery()),
                )
                .values(
                    outcome=HostOutcome.EXPIRED.value,
                    output=NO_ANSWER,
                    finished_at=now,
                    updated_at=now,
                )
            )
        return int(done.rowcount or 0)

    async def record_result(
        self,
        action_id: str,
        result: HostResult,
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Store a host's result; False if the action/host is unknown or already final.

        Two exceptions to "final", where the server decided before the host answered:
        - a host the server gave up on (`expired` with no start recorded) whose result shows it
          started in time gets its real result. A server that was down, or a results consumer
          behind, must not turn a success into a failure;
        - a host the server marked `cancelled` when it sent an abort gets what it really did:
          finished before the abort came, stopped by it, or never started. Once only: the
          host's answer is recorded (`answered_at`), and a second is ignored."""
        [recorded] = await self.record_results([(action_id, result, audit)], now)
        return recorded

    async def record_results(
        self, results: Sequence[tuple[str, HostResult, AuditEntry | None]], now: datetime
    ) -> list[bool]:
        """Store several hosts' results (action id, result, audit entry) in one transaction, as
        `record_result` stores one: whether each was. One commit for the batch, one statement
        per result and two for the batch's audit entries (each statement is a trip to the
        database's thread and back): a fleet-wide action's answers come by the thousand."""
        if not results:
            return []
        async with self._engine.begin() as conn:
            recorded = [
                bool((await conn.execute(_RECORD_RESULT, _result_row(a, r, now))).rowcount)
                for a, r, _ in results
            ]
            audited = [(a, e) for (a, _, e), ok in zip(results, recorded, strict=True) if ok and e]
            if audited:
                # Under the id of the request that made the action, not whatever the host says.
                own = select(actions.c.id, actions.c.correlation).where(
                    actions.c.id.in_({a for a, _ in audited})
                )
                correlation = {row.id: row.correlation for row in await conn.execute(own)}
                await write_many(
                    conn,
                    [
                        replace(e, correlation=correlation.get(a) or e.correlation)
                        for a, e in audited
                    ],
                )
        return recorded

    async def get(self, action_id: str) -> Action | None:
        found = await self._load(select(actions).where(actions.c.id == action_id))
        return found[0] if found else None

    async def recent(
        self,
        limit: int = 50,
        *,
        application: str | None = None,
        kind: str | None = None,
        requested_by: str | None = None,
    ) -> list[Action]:
        """The newest actions, newest first; only those of the given application, kind and
        requester where given."""
        query = select(actions)
        for column, value in (
            (actions.c.application, application),
            (actions.c.kind, kind),
            (actions.c.requested_by, requested_by),
        ):
            if value is not None:
                query = query.where(column == value)
        return await self._load(
            query.order_by(actions.c.created_at.desc(), actions.c.id).limit(limit)
        )

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(actions))).scalar_one())

    async def _load(self, query: Any) -> list[Action]:
        async with self._engine.connect() as conn:
            rows = list(await conn.execute(query))
            ids = [row.id for row in rows]
            host_rows = await conn.execute(
                select(action_hosts)
                .where(action_hosts.c.action_id.in_(ids))
                .order_by(action_hosts.c.host)
            )
            by_action: dict[str, list[HostResult]] = {i: [] for i in ids}
            for h in host_rows:
                by_action[h.action_id].append(
                    HostResult(
                        host=h.host,
                        outcome=HostOutcome(h.outcome),
                        exit_code=h.exit_code,
                        started_at=h.started_at,
                        finished_at=h.finished_at,
                        duration_s=h.duration_s,
                        output=h.output,
                        batch=h.batch,
                        sent_at=h.sent_at,
                        deadline=h.deadline,
                        output_chunks=h.output_chunks,
                        abort_requested_at=h.abort_requested_at,
                        abort_sent_at=h.abort_sent_at,
                    )
                )
            approvals = await load_approvals(conn, ids)
        return [
            Action(
                id=row.id,
                kind=ActionKind(row.kind),
                application=row.application,
                services=list(row.services),
                requested_by=row.requested_by,
                created_at=row.created_at,
                deadline=row.deadline,
                hosts=by_action[row.id],
                strategy=Strategy.model_validate(row.strategy) if row.strategy else None,
                rollout_state=RolloutState(row.rollout_state) if row.rollout_state else None,
                halt_reason=row.halt_reason,
                cancel=CancelRequest(**row.cancel) if row.cancel else None,
                released_at=row.released_at,
                approval=approvals.get(row.id),
                command=_command(row.command),
                environment=row.environment,
                correlation=row.correlation,
            )
            for row in rows
        ]


def _environment(action: Action, environment_of: Callable[[str], str | None]) -> str | None:
    """What access to the action is checked on: the environment its approval policies matched,
    or the application's in the active config as it is requested."""
    if action.environment is not None:
        return action.environment
    if action.approval is not None:
        return action.approval.subject.environment
    return environment_of(action.application)


def _mark(
    action_id: str, host: str, outcome: HostOutcome, why: str, now: datetime, abort: bool = False
) -> Any:
    """A host still open gets the outcome the server decided. `skipped` means never sent: a
    host released meanwhile (by another decision) keeps going. With `abort`, the host is also
    to be sent an abort — in the same statement, so only a host that has not answered is."""
    query = (
        update(action_hosts)
        .where(action_hosts.c.action_id == action_id, action_hosts.c.host == host)
        .where(action_hosts.c.outcome.in_(_OPEN))
    )
    if outcome is HostOutcome.SKIPPED:
        query = query.where(action_hosts.c.sent_at.is_(None))
    values: dict[str, Any] = {
        "outcome": outcome.value,
        "output": why,
        "finished_at": now,
        "updated_at": now,
    }
    if abort:
        values["abort_requested_at"] = now
    return query.values(**values)


async def _sent_and_open(conn: AsyncConnection, action_id: str) -> bool:
    """Whether some host of the action was sent it and has no final outcome yet."""
    found = await conn.execute(
        select(action_hosts.c.host)
        .where(action_hosts.c.action_id == action_id)
        .where(action_hosts.c.outcome.in_(_OPEN))
        .where(action_hosts.c.sent_at.is_not(None))
        .limit(1)
    )
    return found.first() is not None


def _command(stored: Any) -> CommandInvocation | None:
    return CommandInvocation.model_validate(stored) if stored else None


def _result_row(action_id: str, result: HostResult, now: datetime) -> dict[str, Any]:
    return {
        "b_action": action_id,
        "b_host": result.host,
        "b_started": result.started_at,
        "outcome": result.outcome.value,
        "exit_code": result.exit_code,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": result.duration_s,
        "output": result.output,
        "output_chunks": result.output_chunks,
        "updated_at": now,
        "answered_at": now,
    }


def _record_result_statement() -> Update:
    """One host's result onto its row, if the row takes it: open, or decided by the server
    before the host answered (see `record_result`). Made once: a batch runs it per result."""
    aborted_unanswered = (
        (action_hosts.c.outcome == HostOutcome.CANCELLED.value)
        & action_hosts.c.abort_requested_at.is_not(None)
        & action_hosts.c.answered_at.is_(None)
    )
    own_deadline = (
        select(actions.c.deadline).where(actions.c.id == bindparam("b_action")).scalar_subquery()
    )
    # Given up on (expired, no start recorded) but started in time; never true without a
    # start (a comparison with NULL is not true).
    given_up = (
        (action_hosts.c.outcome == HostOutcome.EXPIRED.value)
        & action_hosts.c.started_at.is_(None)
        & (
            func.coalesce(action_hosts.c.deadline, own_deadline)
            >= bindparam("b_started", type_=action_hosts.c.started_at.type)
        )
    )
    return (
        update(action_hosts)
        .where(
            action_hosts.c.action_id == bindparam("b_action"),
            action_hosts.c.host == bindparam("b_host"),
            action_hosts.c.outcome.in_(_OPEN) | aborted_unanswered | given_up,
        )
        .values(
            {
                name: bindparam(name, type_=action_hosts.c[name].type)
                for name in (
                    "outcome",
                    "exit_code",
                    "started_at",
                    "finished_at",
                    "duration_s",
                    "output",
                    "output_chunks",
                    "updated_at",
                    "answered_at",
                )
            }
        )
    )


_RECORD_RESULT = _record_result_statement()
