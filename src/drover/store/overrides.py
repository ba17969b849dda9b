"""Overrides in the system of record. A cleared override is kept (who, when), not deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.model.override import Override
from drover.model.status import TargetStatus
from drover.store.audit import AuditEntry, write
from drover.store.tables import overrides


class OverrideStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, override: Override, audit: AuditEntry | None = None) -> None:
        async with self._engine.begin() as conn:
            if audit is not None:
                await write(conn, audit)
            await conn.execute(
                insert(overrides).values(
                    id=override.id,
                    application=override.application,
                    service=override.service,
                    host=override.host,
                    status=override.status.value,
                    reason=override.reason,
                    created_by=override.created_by,
                    created_at=override.created_at,
                    expires_at=override.expires_at,
                )
            )

    async def active(self, now: datetime) -> list[Override]:
        query = (
            select(overrides)
            .where(overrides.c.cleared_at.is_(None), overrides.c.expires_at > now)
            .order_by(overrides.c.created_at, overrides.c.id)
        )
        async with self._engine.connect() as conn:
            return [_override(row) for row in await conn.execute(query)]

    async def clear(
        self, override_id: str, by: str, now: datetime, audit: AuditEntry | None = None
    ) -> bool:
        """Ends an override still in force; False if there is none with this id."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(overrides)
                .where(
                    overrides.c.id == override_id,
                    overrides.c.cleared_at.is_(None),
                    overrides.c.expires_at > now,
                )
                .values(cleared_at=now, cleared_by=by)
            )
            if done.rowcount and audit is not None:
                await write(conn, audit)
        return bool(done.rowcount)


def _override(row: Any) -> Override:
    return Override(
        id=row.id,
        application=row.application,
        service=row.service,
        host=row.host,
        status=TargetStatus(row.status),
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
