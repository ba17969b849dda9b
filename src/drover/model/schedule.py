"""Schedules: when an action is due, from a cron expression in a time zone; and the windows in
which an approval policy lets scheduled actions through without a second person.

    schedules:
      nightly-web-restart:
        cron: "0 3 * * *"            # minute hour day-of-month month day-of-week
        timezone: Europe/Zurich      # an IANA name; default UTC
        kind: restart
        application: shop
        service: web

A schedule's action is requested by `schedule:<name>` and meets the approval policies as any
action does. A policy's `preapproved` windows — a cron expression for when each window opens and
its `duration` in seconds — let a scheduled action it covers through unapproved when it is
requested inside one: the change was reviewed when the schedule was committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEDULE_PREFIX = "schedule:"  # what a scheduled action says requested it
MAX_DUE = 1000  # due times looked at in one go (a schedule every minute, down for 16 h)


def cron_problem(expression: str) -> str | None:
    """Why `expression` is no five-field cron expression; None if it is one."""
    if len(expression.split()) != 5:
        return f"{expression!r}: expected five fields: minute hour day-of-month month day-of-week"
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression"
    return None


def zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone (an IANA name such as UTC or Europe/Zurich)"
    return None


def due_times(expression: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    """The times it is due after `after` up to `until` (aware datetimes), oldest first; at most
    MAX_DUE, the latest ones."""
    tz = ZoneInfo(zone)
    times = croniter(expression, after.astimezone(tz))
    due: list[datetime] = []
    while (next_time := times.get_next(datetime)) <= until:
        due.append(next_time)
        if len(due) > MAX_DUE:
            del due[0]
    return due


def next_due(expression: str, zone: str, after: datetime) -> datetime:
    next_time: datetime = croniter(expression, after.astimezone(ZoneInfo(zone))).get_next(datetime)
    return next_time


def _cron(value: str) -> str:
    if problem := cron_problem(value):
        raise ValueError(problem)
    return value


def _zone(value: str) -> str:
    if problem := zone_problem(value):
        raise ValueError(problem)
    return value


Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_zone)]


class Window(BaseModel):
    """A window that opens at each time `cron` says (in `timezone`) and stays open `duration`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cron: Cron
    duration: float = Field(gt=0, le=7 * 24 * 3600, description="seconds")
    timezone: TimeZone = "UTC"

    def holds(self, at: datetime) -> bool:
        """Whether `at` falls in a window: the latest opening at or before it, plus duration."""
        tz = ZoneInfo(self.timezone)
        opened: datetime = croniter(self.cron, (at + timedelta(seconds=1)).astimezone(tz)).get_prev(
            datetime
        )
        return opened <= at < opened + timedelta(seconds=self.duration)


def in_any(windows: Sequence[Window], at: datetime) -> bool:
    return any(window.holds(at) for window in windows)
