"""The audit trail: who did what, when, from where, under which request, append-only.

Entries are written in the same transaction as the change they record (`write(conn, entry)`
from the store that makes the change), so a change is never on record without its entry, nor
the other way round. Nothing here updates or deletes an entry.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.ops.logging import CORRELATION
from drover.store.tables import audit


@dataclass(frozen=True)
class Origin:
    """Where a change came from: the client's address and the request's correlation id."""

    source: str = ""
    correlation: str = ""


# Set per API request (server/api/app.py); background loops leave it empty.
ORIGIN: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("origin", default=None)


@dataclass(frozen=True)
class AuditEntry:
    actor: str  # a person, `agent:<host>`, or `drover` for the server's own decisions
    kind: str  # what happened, e.g. `action.requested`, `override.cleared`, `config.applied`
    subject: str  # what it happened to: an action id, an override id, a revision
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    correlation: str = ""
    id: int | None = None  # given by the store


# Per database: who hears of each entry written (the server's live pages). An entry is kept
# with the connection that wrote it and told once that connection goes back to the pool: after
# its transaction committed (or rolled back: a needless tick costs a refetch, an early one
# would show a page what is not there yet).
_LISTENERS: weakref.WeakKeyDictionary[Engine, list[Callable[[AuditEntry], None]]] = (
    weakref.WeakKeyDictionary()
)
_UNTOLD = "drover.audit.untold"


def listen(engine: AsyncEngine, listener: Callable[[AuditEntry], None]) -> None:
    sync = engine.sync_engine
    if sync not in _LISTENERS:
        listeners: list[Callable[[AuditEntry], None]] = []
        _LISTENERS[sync] = listeners

        def checked_in(_dbapi: object, record: Any) -> None:
            for entry in record.info.pop(_UNTOLD, ()):
                for each in listeners:
                    each(entry)

        event.listen(sync.pool, "checkin", checked_in)
    _LISTENERS[sync].append(listener)


async def write(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Add `entry` in the caller's transaction, with the current request's origin if it has
    none of its own."""
    await write_many(conn, [entry])


async def write_many(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    """Add `entries` in the caller's transaction, in one statement (as `write` adds one)."""
    if not entries:
        return
    origin = ORIGIN.get() or Origin()
    if conn.sync_engine in _LISTENERS:
        conn.sync_connection.info.setdefault(_UNTOLD, []).extend(entries)  # type: ignore[union-attr]
    rows = [
        {
            "at": entry.at,
            "actor": entry.actor,
            "kind": entry.kind,
            "subject": entry.subject,
            "detail": entry.detail,
            "source": entry.source or origin.source,
            # An API request's id; else that of the action being carried out (ops.logging).
            "correlation": entry.correlation or origin.correlation or CORRELATION.get(),
        }
        for entry in entries
    ]
    await conn.execute(insert(audit), rows)


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, entry: AuditEntry) -> None:
        """An entry of its own, for what no other store records (a config revision)."""
        async with self._engine.begin() as conn:
            await write(conn, entry)

    async def query(
        self,
        *,
        actor: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        correlation: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first. `kind` matches a whole kind or a prefix ending in `.` (`action.`)."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if kind is not None:
            query = query.where(
                audit.c.kind.startswith(kind, autoescape=True)
                if kind.endswith(".")
                else audit.c.kind == kind
            )
        if subject is not None:
            query = query.where(audit.c.subject == subject)
        if correlation is not None:
            query = query.where(audit.c.correlation == correlation)
        if since is not None:
            query = query.where(audit.c.at >= since)
        if until is not None:
            query = query.where(audit.c.at < until)
        async with self._engine.connect() as conn:
            return [
                AuditEntry(
                    id=row.id,
                    at=row.at,
                    actor=row.actor,
                    kind=row.kind,
                    subject=row.subject,
                    detail=dict(row.detail),
                    source=row.source,
                    correlation=row.correlation,
                )
                for row in await conn.execute(query)
            ]
