"""The canary: every `every` seconds, a `ping` through the whole path of an action, to one host.

It is submitted as a person's action is (Orchestrator.submit: recorded, signed, dispatched on the
bus, taken by the agent through its ledger, answered, recorded), by `drover-canary`, to the
next online host in id order that an application is placed on, round robin, so that over time
every host is tried. It runs only on the server that drives the fleet (the lease holder).

Each run ends `ok` (the host answered in time), `failed` (the action ended otherwise with a
known cause: its result says why) or `lost` (no answer from the host by the deadline, or not
final by the deadline and a grace: the host was down or the path lost it),
and is counted in `drover_canary_runs_total{outcome}` with its duration in
`drover_canary_duration_seconds`. A ping covered by an approval policy would wait for a person:
give the canary's pings none, or it reports `failed` ("waits for approval").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from drover.config.placement import applications_on
from drover.config.schema import FleetConfig
from drover.model.action import UNANSWERED, ActionKind, ActionState, HostOutcome
from drover.ops.clock import Clock
from drover.ops.metrics import Metrics
from drover.server.errors import ServerError
from drover.server.fleet import FleetView
from drover.server.orchestrator import Orchestrator
from drover.store.actions import ActionStore

log = logging.getLogger(__name__)

REQUESTED_BY = "drover-canary"
DEADLINE = timedelta(seconds=60)
GRACE = 30.0  # past the deadline, for the expiry sweep to mark an unanswered host
POLL = 0.5


class Canary:
    def __init__(
        self,
        orchestrator: Orchestrator,
        store: ActionStore,
        fleet: FleetView,
        config: Callable[[], FleetConfig | None],
        clock: Clock,
        metrics: Metrics,
        every: float,
        deadline: timedelta = DEADLINE,
    ) -> None:
        self._orchestrator = orchestrator
        self._store = store
        self._fleet = fleet
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self.every = every
        self._deadline = deadline
        self._last_host = ""
        self.last: tuple[str, str, str] | None = None  # (host, outcome, why) of the last run

    async def run(self) -> None:
        """A loop: a run every `every` seconds (none if `every` is 0)."""
        if self.every <= 0:
            await asyncio.Event().wait()  # off: nothing to do, until stopped
        while True:
            await asyncio.sleep(self.every)
            await self.once()

    async def once(self) -> str | None:
        """One run; its outcome, or None when no online host has an application to ping."""
        chosen = self._next()
        if chosen is None:
            return None
        application, host = chosen
        loop = asyncio.get_running_loop()
        began = loop.time()
        outcome, why = await self._ping(application, host)
        took = loop.time() - began
        self._metrics.canary_runs.labels(outcome).inc()
        self._metrics.canary_seconds.observe(took)
        if outcome != "ok":
            log.warning("canary: ping of %s (%s) %s: %s", host, application, outcome, why)
        self.last = (host, outcome, why)
        return outcome

    def _next(self) -> tuple[str, str] | None:
        """The next online host after the last one tried, with an application placed on it."""
        config = self._config()
        if config is None:
            return None
        now = self._clock.now()
        online = sorted(
            host
            for host in self._fleet.hosts
            if (status := self._fleet.host_status(host, now)) and status.online
        )
        order = [h for h in online if h > self._last_host] + [
            h for h in online if h <= self._last_host
        ]
        for host in order:
            placed = applications_on(config, host)
            if placed:
                self._last_host = host
                return sorted(placed)[0], host
        return None

    async def _ping(self, application: str, host: str) -> tuple[str, str]:
        try:
            action = await self._orchestrator.submit(
                ActionKind.PING, application, None, [host], REQUESTED_BY, self._deadline
            )
        except ServerError as err:
            return "failed", f"not accepted: {err}"
        bound = self._deadline.total_seconds() + GRACE
        loop = asyncio.get_running_loop()
        until = loop.time() + bound
        while loop.time() < until:
            found = await self._store.get(action.id)
            if found is not None and found.state is not ActionState.RUNNING:
                if found.state is ActionState.SUCCEEDED:
                    return "ok", ""
                if found.state is ActionState.PENDING_APPROVAL:
                    return "failed", "waits for approval"
                [result] = found.hosts
                why = f"{result.outcome}: {result.output}"
                if result.outcome is HostOutcome.EXPIRED and result.output in UNANSWERED:
                    return "lost", why  # the host, or the path, never answered
                return "failed", why
            await asyncio.sleep(POLL)
        return "lost", f"action {action.id} not final {bound:g} s after it was asked"
