"""Silences in the system of record: made and ended by people, kept afterwards (who, when)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import silences


@dataclass(frozen=True)
class Silence:
    id: str
    rule: str | None  # None: any rule
    key: str | None  # a glob over the alert's key; None: any
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None


class SilenceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, silence: Silence, audit: AuditEntry) -> None:
        async with self._engine.begin() as conn:
            await write(conn, audit)
            await conn.execute(
                insert(silences).values(
                    id=silence.id,
                    rule=silence.rule,
                    key=silence.key,
                    reason=silence.reason,
                    created_by=silence.created_by,
                    created_at=silence.created_at,
                    expires_at=silence.expires_at,
                )
            )

    async def listed(self, now: datetime, *, active_only: bool) -> list[Silence]:
        query = select(silences).order_by(silences.c.created_at, silences.c.id)
        if active_only:
            query = query.where(silences.c.ended_at.is_(None), silences.c.expires_at > now)
        async with self._engine.connect() as conn:
            return [_silence(row) for row in await conn.execute(query)]

    async def end(self, silence_id: str, by: str, now: datetime, audit: AuditEntry) -> bool:
        """End a silence still in force; False if there is none with this id."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(silences)
                .where(
                    silences.c.id == silence_id,
                    silences.c.ended_at.is_(None),
                    silences.c.expires_at > now,
                )
                .values(ended_at=now, ended_by=by)
            )
            if done.rowcount == 0:
                return False
            await write(conn, audit)
            return True


def _silence(row: Any) -> Silence:
    return Silence(
        id=row.id,
        rule=row.rule,
        key=row.key,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
    )
