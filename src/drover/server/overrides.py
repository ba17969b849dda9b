"""Overrides: set, listed and cleared through the API; in force until they expire.

The active set is read from the system of record on every desired-state pass, so several
server processes agree, and an expired override simply stops being returned.

An override does what an action of the matching kind would (`stopped` stops, `running` starts),
so one the approval policies cover for that kind is refused: it would get round the four eyes.
Such a change is requested as an action, which waits for its approvals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from drover.config.schema import FleetConfig
from drover.model.action import ActionKind
from drover.model.approval import Subject, applicable
from drover.model.override import Override
from drover.model.status import TargetStatus
from drover.ops.clock import Clock
from drover.server.errors import Conflict, NotFound, no_active_config
from drover.store.audit import AuditEntry
from drover.store.overrides import OverrideStore

log = logging.getLogger(__name__)

# The action an override stands in for: what approval policies are matched against.
_KIND_OF: dict[TargetStatus, ActionKind] = {
    TargetStatus.STOPPED: ActionKind.STOP,
    TargetStatus.RUNNING: ActionKind.START,
}


class Overrides:
    def __init__(
        self,
        store: OverrideStore,
        clock: Clock,
        active_config: Callable[[], FleetConfig | None],
        changed: Callable[[], Awaitable[None]],
        discovered: Callable[[str], Mapping[str, set[str]]] = lambda application: {},
    ) -> None:
        self._discovered = discovered
        self._store = store
        self._clock = clock
        self._active_config = active_config
        self._changed = changed

    async def active(self) -> list[Override]:
        return await self._store.active(self._clock.now())

    async def set(
        self,
        application: str,
        service: str | None,
        host: str | None,
        status: TargetStatus,
        reason: str,
        duration: timedelta,
        by: str,
    ) -> Override:
        config = self._active_config()
        if config is None:
            raise no_active_config()
        app = config.applications.get(application)
        if app is None:
            raise NotFound(f"no application {application!r}")
        known = set(app.services).union(*self._discovered(application).values())
        if service is not None and service not in known:
            raise NotFound(f"application {application!r} has no service {service!r}")
        _refuse_if_approval_needed(config, application, app.environment, status)
        now = self._clock.now()
        override = Override(
            id=uuid.uuid4().hex[:12],
            application=application,
            service=service,
            host=host,
            status=status,
            reason=reason,
            created_by=by,
            created_at=now,
            expires_at=now + duration,
        )
        detail = {
            "application": application,
            "service": service,
            "host": host,
            "status": status.value,
            "reason": reason,
            "expires_at": override.expires_at.isoformat(),
        }
        await self._store.create(override, AuditEntry(by, "override.set", override.id, now, detail))
        log.info(
            "override %s: %s/%s on %s → %s until %s by %s: %s",
            override.id,
            application,
            service or "*",
            host or "*",
            status,
            override.expires_at.isoformat(timespec="seconds"),
            by,
            reason,
        )
        await self._changed()
        return override

    async def clear(self, override_id: str, by: str) -> None:
        now = self._clock.now()
        entry = AuditEntry(by, "override.cleared", override_id, now)
        if not await self._store.clear(override_id, by, now, entry):
            raise NotFound(f"no override {override_id!r} in force")
        log.info("override %s cleared by %s", override_id, by)
        await self._changed()


def _refuse_if_approval_needed(
    config: FleetConfig, application: str, environment: str, status: TargetStatus
) -> None:
    """Conflict (409) when an approval policy covers the action this override stands in for."""
    kind = _KIND_OF[status]
    policies = applicable(config.approvals, Subject(application, environment, kind.value))
    if policies:
        names = ", ".join(repr(p.name) for p in policies)
        raise Conflict(
            f"an override to {status} on {application} ({environment}) would get round the "
            f"approval policy {names}, which covers {kind}: request the action instead "
            f"(drover action {kind} {application}), it runs once approved"
        )
