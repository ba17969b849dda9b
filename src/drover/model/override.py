"""Overrides: a person's temporary word on a service's target, e.g. for maintenance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from drover.model.status import TargetStatus


@dataclass(frozen=True)
class Override:
    id: str
    application: str
    service: str | None  # None: every service of the application
    host: str | None  # None: every host it runs on
    status: TargetStatus
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime

    def covers(self, application: str, service: str, host: str) -> bool:
        return (
            self.application == application
            and self.service in (None, service)
            and self.host in (None, host)
        )

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


def effective_target(
    configured: TargetStatus,
    overrides: Iterable[Override],
    application: str,
    service: str,
    host: str,
    now: datetime,
) -> tuple[TargetStatus, Override | None]:
    """The target in force, and the override that set it. The newest active override wins."""
    covering = [o for o in overrides if o.active(now) and o.covers(application, service, host)]
    if not covering:
        return configured, None
    newest = max(covering, key=lambda o: (o.created_at, o.id))
    return newest.status, newest
