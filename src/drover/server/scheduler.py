"""The scheduler: the config's `schedules:` (model/schedule.py) run on the server that drives the
fleet (the lease holder), each time they are due.

Every TICK seconds it looks, for each schedule, at the times it was due since the last one on
record (for a schedule not yet on record: since this server first saw it — nothing before that
counts as missed). Of those, only the latest may run, and only if it is found at most `late`
seconds after its time; it is submitted as `schedule:<name>` (Orchestrator.submit), under the
approval policies as any action, with its own record. Every other due time — drover was not
running then, or not driving the fleet — is recorded `missed`, audited and logged: a missed run is
reported, never replayed blindly. A run the orchestrator refuses (a host or service no longer
there, a command's parameters) is recorded `refused` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from drover.config.schema import FleetConfig, ScheduleSpec
from drover.model.schedule import SCHEDULE_PREFIX, due_times
from drover.ops.clock import Clock
from drover.server.errors import ServerError
from drover.server.orchestrator import Orchestrator
from drover.store.audit import AuditEntry
from drover.store.schedules import ScheduleRun, ScheduleStore

log = logging.getLogger(__name__)

TICK = 5.0


class Scheduler:
    def __init__(
        self,
        orchestrator: Orchestrator,
        store: ScheduleStore,
        config: Callable[[], FleetConfig | None],
        clock: Clock,
        tick: float = TICK,
    ) -> None:
        self._orchestrator = orchestrator
        self._store = store
        self._config = config
        self._clock = clock
        self.tick = tick
        self._first_seen: dict[str, datetime] = {}

    async def run(self) -> None:
        """A loop: a look every `tick` seconds."""
        while True:
            await self.look()
            await asyncio.sleep(self.tick)

    async def look(self) -> None:
        config = self._config()
        if config is None or not config.schedules:
            return
        now = self._clock.now()
        recorded = await self._store.last_due()
        for name, spec in sorted(config.schedules.items()):
            since = recorded.get(name) or self._first_seen.setdefault(name, now)
            due = due_times(spec.cron, spec.timezone, since, now)
            if not due:
                continue
            *earlier, latest = due
            for time in earlier:
                await self._missed(name, time, now, "not run at its time: a later one was due")
            if now - latest > timedelta(seconds=spec.late):
                late = f"found due {int((now - latest).total_seconds())} s after its time"
                await self._missed(name, latest, now, f"not run: {late} (drover was not running)")
            else:
                await self._submit(name, spec, latest, now)

    async def _submit(self, name: str, spec: ScheduleSpec, due: datetime, now: datetime) -> None:
        try:
            action = await self._orchestrator.submit(
                spec.kind,
                spec.application,
                spec.service,
                spec.hosts or None,
                f"{SCHEDULE_PREFIX}{name}",
                timedelta(seconds=spec.deadline),
                groups=spec.groups or None,
                labels=spec.labels or None,
                command=spec.command,
                params=spec.params or None,
            )
        except ServerError as err:
            log.warning("schedule %s: its run due at %s was refused: %s", name, due, err.message)
            entry = AuditEntry("drover", "schedule.refused", name, now, {"due_at": due.isoformat()})
            await self._store.record(
                ScheduleRun(name, due, "refused", None, err.message, now), entry
            )
            return
        log.info("schedule %s: action %s for its run due at %s", name, action.id, due)
        await self._store.record(ScheduleRun(name, due, "ran", action.id, "", now))

    async def _missed(self, name: str, due: datetime, now: datetime, why: str) -> None:
        log.warning("schedule %s: its run due at %s was missed: %s", name, due, why)
        detail = {"due_at": due.isoformat(), "why": why}
        entry = AuditEntry("drover", "schedule.missed", name, now, detail)
        await self._store.record(ScheduleRun(name, due, "missed", None, why, now), entry)
