"""Schedules (config `schedules:`) as they stand: when each is next due, and its recent runs —
ran (its action), missed (reported, not replayed) or refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from drover.model.access import Permission
from drover.model.schedule import next_due
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.schemas import Body, ErrorOut

scheduling = APIRouter(prefix="/api/v1", tags=["schedules"])

REFUSALS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403)}
RUNS_SHOWN = 20  # per schedule


class ScheduleRunOut(Body):
    due_at: datetime
    state: str = Field(description="ran, missed (not run: found due too late), refused")
    action_id: str | None
    note: str


class ScheduleOut(Body):
    name: str
    cron: str
    timezone: str
    kind: str
    application: str
    next_due: datetime
    runs: list[ScheduleRunOut] = Field(description="the latest first")


@scheduling.get("/schedules", response_model=list[ScheduleOut], responses=REFUSALS)
async def list_schedules(ctx: Ctx, caller: Caller) -> list[ScheduleOut]:
    await authorize(ctx, caller, Permission.READ)
    config = ctx.config.active
    if config is None:
        return []
    now = ctx.clock.now()
    runs = await ctx.schedules.recent()
    return [
        ScheduleOut(
            name=name,
            cron=spec.cron,
            timezone=spec.timezone,
            kind=spec.kind.value,
            application=spec.application,
            next_due=next_due(spec.cron, spec.timezone, now),
            runs=[
                ScheduleRunOut(
                    due_at=run.due_at, state=run.state, action_id=run.action_id, note=run.note
                )
                for run in runs
                if run.schedule == name
            ][:RUNS_SHOWN],
        )
        for name, spec in sorted(config.schedules.items())
    ]
