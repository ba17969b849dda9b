"""Commands' output, stored whole, in the system of record.

Each host's output is the chunks its agent sent (seq 1..n), stored once each however often they
arrive: several server processes may take them from the bus, and the bus may deliver one again.
Once the host is final and its chunks are in, seq 0 marks the end of its stream.

Every row of an action also gets a `position`: 1, 2, 3... in the order the rows were committed,
never a gap that a later commit fills. That is what a live reader follows (rows past the last
position it saw) and what it resumes from. A row takes the next position in the statement that
inserts it, and one writer at a time does so per action: on PostgreSQL a transaction-scoped
advisory lock on the action queues the writers (each one's statement then sees the row before
it); SQLite has one writer at a time anyway. Should two ever take the same position, the
unique index refuses the second, which tries again.

The bytes kept per host are capped by the action's `output_limit` (plus room for the agent's own
truncation note); past it, chunks are stored empty, so that their count still adds up, and
`TRUNCATED` says so once. With several server processes at once, the cap may be passed by a
chunk each.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Integer,
    LargeBinary,
    and_,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.model.action import HostOutcome
from drover.model.command import CommandInvocation
from drover.store.tables import UTCDateTime, action_hosts, action_output, actions

END = 0  # the seq of a host's end-of-stream row
NOTE_ROOM = 1024  # past the limit, for the agent's note that it truncated the output
TRUNCATED = b"\n[drover: output truncated by the server: this host sent more than its limit]\n"
ATTEMPTS = 8
PAGE = 256


class Stored(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # this seq was stored before
    UNKNOWN = "unknown"  # no such action and host, or the action runs no command


class OutputBusy(Exception):
    """A row could not be stored after several attempts (other writers kept winning)."""


@dataclass(frozen=True)
class OutputRow:
    position: int
    host: str
    seq: int  # END: the end of the host's stream, `data` its summary (JSON)
    data: bytes


@dataclass(frozen=True)
class OpenHost:
    """A host of a command whose output stream has not ended yet, though the host is final."""

    action_id: str
    host: str
    outcome: HostOutcome
    exit_code: int | None
    expected: int  # chunks its result said it sent (0 when the server decided its outcome)
    stored: int  # chunks stored so far
    final_since: datetime
    # Marked `cancelled` by the server when it sent an abort, and the host has not answered:
    # its answer will say how many chunks it sent (and how it really ended).
    awaiting_answer: bool = False


class OutputStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def append(
        self, action_id: str, host: str, seq: int, data: bytes, now: datetime
    ) -> Stored:
        """Store chunk `seq` (≥ 1) of a host's output, once."""
        for _ in range(ATTEMPTS):
            async with self._engine.connect() as conn:
                limit = (
                    await conn.execute(
                        select(actions.c.command)
                        .join(action_hosts, action_hosts.c.action_id == actions.c.id)
                        .where(actions.c.id == action_id, action_hosts.c.host == host)
                    )
                ).first()
                if limit is None or not limit.command:
                    return Stored.UNKNOWN
                if await _exists(conn, action_id, host, seq):
                    return Stored.DUPLICATE
                kept = (
                    await conn.execute(
                        select(func.coalesce(func.sum(action_output.c.size), 0)).where(
                            action_output.c.action_id == action_id,
                            action_output.c.host == host,
                            action_output.c.seq != END,
                        )
                    )
                ).scalar_one()
            cap = CommandInvocation.model_validate(limit.command).output_limit + NOTE_ROOM
            if await self._insert(action_id, host, seq, capped(data, int(kept), cap), now):
                return Stored.STORED
        raise OutputBusy(f"output {action_id}/{host} #{seq}: not stored in {ATTEMPTS} attempts")

    async def close(self, action_id: str, host: str, summary: bytes, now: datetime) -> None:
        """End the host's stream with `summary`; a second close changes nothing."""
        for _ in range(ATTEMPTS):
            async with self._engine.connect() as conn:
                if await _exists(conn, action_id, host, END):
                    break
            if await self._insert(action_id, host, END, summary, now):
                break
        else:
            raise OutputBusy(f"output {action_id}/{host}: end not stored in {ATTEMPTS} attempts")
        async with self._engine.begin() as conn:
            await conn.execute(
                update(action_hosts)
                .where(action_hosts.c.action_id == action_id, action_hosts.c.host == host)
                .values(output_open=False)
            )

    async def _insert(
        self, action_id: str, host: str, seq: int, data: bytes, now: datetime
    ) -> bool:
        """Insert at the next position; False (after a short pause) when another writer took
        it, or this seq, or SQLite was busy."""
        next_position = select(
            literal(action_id),
            literal(host),
            literal(seq, Integer),
            func.coalesce(func.max(action_output.c.position), 0) + 1,
            literal(len(data), Integer),
            literal(data, LargeBinary),
            literal(now, UTCDateTime),
        ).where(action_output.c.action_id == action_id)
        columns = ["action_id", "host", "seq", "position", "size", "data", "stored_at"]
        try:
            async with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(_ONE_WRITER, {"action_id": action_id})
                await conn.execute(insert(action_output).from_select(columns, next_position))
        except (IntegrityError, OperationalError):
            await asyncio.sleep(random.uniform(0.005, 0.05))
            return False
        return True

    async def open_hosts(self, limit: int = 500) -> list[OpenHost]:
        """Hosts whose outcome is final but whose output stream has not ended."""
        stored = (
            select(func.count())
            .where(
                action_output.c.action_id == action_hosts.c.action_id,
                action_output.c.host == action_hosts.c.host,
                action_output.c.seq != END,
            )
            .scalar_subquery()
        )
        query = (
            select(action_hosts, stored.label("stored"))
            .where(action_hosts.c.output_open.is_(True))
            .where(action_hosts.c.outcome.not_in(_OPEN))
            .order_by(action_hosts.c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [
                OpenHost(
                    action_id=row.action_id,
                    host=row.host,
                    outcome=HostOutcome(row.outcome),
                    exit_code=row.exit_code,
                    expected=row.output_chunks or 0,
                    stored=int(row.stored),
                    final_since=row.updated_at,
                    awaiting_answer=row.abort_requested_at is not None and row.answered_at is None,
                )
                for row in await conn.execute(query)
            ]

    async def read(
        self, action_id: str, after: int, hosts: Sequence[str] | None = None, limit: int = PAGE
    ) -> list[OutputRow]:
        """Rows of the action past position `after`, in order (only `hosts`' when given)."""
        query = (
            select(
                action_output.c.position,
                action_output.c.host,
                action_output.c.seq,
                action_output.c.data,
            )
            .where(action_output.c.action_id == action_id, action_output.c.position > after)
            .order_by(action_output.c.position)
            .limit(limit)
        )
        if hosts is not None:
            query = query.where(action_output.c.host.in_(hosts))
        async with self._engine.connect() as conn:
            return [OutputRow(r.position, r.host, r.seq, r.data) for r in await conn.execute(query)]

    async def ended(self, action_id: str, upto: int) -> set[str]:
        """Hosts whose end of stream is at or before position `upto`."""
        query = select(action_output.c.host).where(
            action_output.c.action_id == action_id,
            action_output.c.seq == END,
            action_output.c.position <= upto,
        )
        async with self._engine.connect() as conn:
            return {row.host for row in await conn.execute(query)}

    async def whole(self, action_id: str, host: str) -> AsyncIterator[bytes]:
        """The host's output, chunk by chunk in order, read a page at a time."""
        seq = 0
        while True:
            query = (
                select(action_output.c.seq, action_output.c.data)
                .where(
                    and_(
                        action_output.c.action_id == action_id,
                        action_output.c.host == host,
                        action_output.c.seq > seq,
                    )
                )
                .order_by(action_output.c.seq)
                .limit(PAGE)
            )
            async with self._engine.connect() as conn:
                rows = list(await conn.execute(query))
            for row in rows:
                yield row.data
            if len(rows) < PAGE:
                return
            seq = rows[-1].seq


_OPEN = [HostOutcome.PENDING.value, HostOutcome.DISPATCHED.value]
# Until the transaction ends, one writer of an action's output at a time. Two 32-bit keys, a
# space apart from the migrations' single 64-bit one.
_ONE_WRITER = text("SELECT pg_advisory_xact_lock(1685221238, hashtext(:action_id))")


async def _exists(conn: AsyncConnection, action_id: str, host: str, seq: int) -> bool:
    found = await conn.execute(
        select(action_output.c.seq).where(
            action_output.c.action_id == action_id,
            action_output.c.host == host,
            action_output.c.seq == seq,
        )
    )
    return found.first() is not None


def capped(data: bytes, kept: int, cap: int) -> bytes:
    """What of `data` to store when `kept` bytes are stored already and `cap` is the most to
    keep: all of it; or, for the chunk that would pass the cap, what fits and TRUNCATED; or,
    once past (TRUNCATED took it past), nothing."""
    room = cap - kept
    if len(data) <= room:
        return data
    return data[:room] + TRUNCATED if room >= 0 else b""
