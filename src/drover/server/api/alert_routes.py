"""Alerts holding now, and silences: who may see them (fleet-wide read) and make or end them
(admin). A silence holds back the alerts of one rule (or all) whose key matches a glob (or all)
until it expires; making and ending one is audited."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import Field

from drover.model.access import Permission
from drover.model.names import Name
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.schemas import Body, ErrorOut, Text
from drover.server.errors import NotFound
from drover.store.audit import AuditEntry
from drover.store.silences import Silence

alerting = APIRouter(prefix="/api/v1", tags=["alerts"])

REFUSALS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403)}
MAX_SILENCE = timedelta(days=30)


class AlertOut(Body):
    rule: Name
    key: str = Field(description="what it is about: a host, host/application/service, …")
    summary: str
    since: datetime
    notified_at: datetime | None = Field(description="last sent; null: not (yet) sent")
    silenced_by: str | None = Field(description="the silence holding it back")


SilenceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class SilenceIn(Body):
    rule: Name | None = Field(default=None, description="null: every rule")
    key: Text | None = Field(
        default=None, min_length=1, max_length=300, description="a glob over alert keys"
    )
    duration_s: int = Field(gt=0, le=int(MAX_SILENCE.total_seconds()))
    reason: Text = Field(min_length=1, max_length=1000)


class SilenceOut(Body):
    id: str
    rule: str | None
    key: str | None
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    ended_by: str | None


@alerting.get("/alerts", response_model=list[AlertOut], responses=REFUSALS)
async def list_alerts(ctx: Ctx, caller: Caller) -> list[AlertOut]:
    """The alerts holding now, as the server that sends them sees them (on another server of a
    cluster: empty, it does not send)."""
    await authorize(ctx, caller, Permission.READ)
    if ctx.alerter is None:
        return []
    return [
        AlertOut(
            rule=a.rule,
            key=a.key,
            summary=a.summary,
            since=a.since,
            notified_at=a.notified_at,
            silenced_by=a.silenced_by,
        )
        for a in ctx.alerter.firing()
    ]


@alerting.get("/silences", response_model=list[SilenceOut], responses=REFUSALS)
async def list_silences(
    ctx: Ctx,
    caller: Caller,
    all: Annotated[bool, Query(description="ended and expired ones too")] = False,
) -> list[SilenceOut]:
    await authorize(ctx, caller, Permission.READ)
    found = await ctx.silences.listed(ctx.clock.now(), active_only=not all)
    return [_view(s) for s in found]


@alerting.post(
    "/silences",
    status_code=status.HTTP_201_CREATED,
    response_model=SilenceOut,
    responses=REFUSALS,
)
async def create_silence(body: SilenceIn, ctx: Ctx, caller: Caller) -> SilenceOut:
    """Hold back matching alerts until `duration_s` has passed."""
    await authorize(ctx, caller, Permission.ADMIN)
    now = ctx.clock.now()
    silence = Silence(
        id=uuid.uuid4().hex[:16],
        rule=body.rule,
        key=body.key,
        reason=body.reason,
        created_by=caller.name,
        created_at=now,
        expires_at=now + timedelta(seconds=body.duration_s),
    )
    detail = {"rule": body.rule, "key": body.key, "until": silence.expires_at.isoformat()}
    await ctx.silences.create(
        silence, AuditEntry(caller.name, "silence.set", silence.id, now, detail)
    )
    return _view(silence)


@alerting.delete(
    "/silences/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**REFUSALS, 404: {"model": ErrorOut}},
)
async def end_silence(silence_id: SilenceId, ctx: Ctx, caller: Caller) -> None:
    """End a silence before it expires."""
    await authorize(ctx, caller, Permission.ADMIN)
    now = ctx.clock.now()
    entry = AuditEntry(caller.name, "silence.ended", silence_id, now)
    if not await ctx.silences.end(silence_id, caller.name, now, entry):
        raise NotFound(f"no silence {silence_id} in force")


def _view(silence: Silence) -> SilenceOut:
    return SilenceOut.model_validate(asdict(silence))
