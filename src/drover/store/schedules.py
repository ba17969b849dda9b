"""Schedule runs in the system of record: one row per time a schedule was due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import schedule_runs


@dataclass(frozen=True)
class ScheduleRun:
    schedule: str
    due_at: datetime
    state: str  # ran (action_id made), missed (not run: found due too late), refused
    action_id: str | None
    note: str
    recorded_at: datetime


class ScheduleStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def last_due(self) -> dict[str, datetime]:
        """Schedule → the latest due time recorded."""
        query = select(schedule_runs.c.schedule, func.max(schedule_runs.c.due_at)).group_by(
            schedule_runs.c.schedule
        )
        async with self._engine.connect() as conn:
            return {name: due for name, due in await conn.execute(query)}

    async def record(self, run: ScheduleRun, audit: AuditEntry | None = None) -> None:
        async with self._engine.begin() as conn:
            if audit is not None:
                await write(conn, audit)
            await conn.execute(
                insert(schedule_runs).values(
                    schedule=run.schedule,
                    due_at=run.due_at,
                    state=run.state,
                    action_id=run.action_id,
                    note=run.note,
                    recorded_at=run.recorded_at,
                )
            )

    async def recent(self, limit: int = 200) -> list[ScheduleRun]:
        query = (
            select(schedule_runs)
            .order_by(schedule_runs.c.due_at.desc(), schedule_runs.c.schedule)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_run(row) for row in await conn.execute(query)]


def _run(row: Any) -> ScheduleRun:
    return ScheduleRun(
        row.schedule, row.due_at, row.state, row.action_id, row.note, row.recorded_at
    )
