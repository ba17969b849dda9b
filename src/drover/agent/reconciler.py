"""Keeps enforced services at their target: the one place where drift is corrected.

Every state a provider reports passes through here on its way to the reporter, and leaves
annotated with its `convergence`:

- at target (or moving there by itself: starting, stopping) → `ok`; once it has stayed there
  for `STABLE_AFTER` seconds, the attempt count starts over (so a process that dies a moment
  after each start still runs out of attempts);
- drifted under `observe` → `observed`: reported, never corrected;
- drifted under `enforce` → `converging`: after a backoff the agent starts (or stops) it,
  again and again, up to `max_attempts`; then → `failed-to-converge`, and it is left alone
  until the desired state changes or the service reaches its target by other means.

This also makes crash loops visible: a supervised process that dies on every start ends as
`failed-to-converge` instead of being restarted for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from drover.agent.providers.base import StateListener
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus, has_drift
from drover.ops.clock import Clock
from drover.ops.loops import Backoff

log = logging.getLogger(__name__)

Act = Callable[[str, str, ActionKind], Awaitable[str]]
Key = tuple[str, str]

# A service that is still on its way needs no help.
_IN_TRANSITION = (ServiceStatus.STARTING, ServiceStatus.STOPPING)


@dataclass
class _Tracked:
    desired: DesiredService
    state: ServiceState | None = None
    attempts: int = 0
    gave_up: bool = False
    ok_since: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    pending: asyncio.Task[None] | None = None
    acting: bool = False  # the pending attempt is inside the provider: let it finish


STABLE_AFTER = 30.0


class Reconciler:
    def __init__(
        self,
        act: Act,
        clock: Clock,
        tg: asyncio.TaskGroup,
        forward: StateListener,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
    ) -> None:
        self._act = act
        self._clock = clock
        self._backoff = (backoff_base, backoff_cap)
        self._closed = False
        self._tg = tg
        self._forward = forward
        self._tracked: dict[Key, _Tracked] = {}

    def desired_changed(self, services: Sequence[DesiredService]) -> None:
        """A new desired state: changed services get a fresh set of attempts."""
        wanted = {(d.application, d.service): d for d in services}
        for key in [k for k in self._tracked if k not in wanted]:
            self._cancel(self._tracked.pop(key))
        for key, desired in wanted.items():
            tracked = self._tracked.get(key)
            if tracked is None or tracked.desired != desired:
                if tracked is not None:
                    self._cancel(tracked)
                fresh = _Tracked(
                    desired, tracked.state if tracked else None, backoff=Backoff(*self._backoff)
                )
                if tracked is not None and tracked.acting:
                    # An attempt is inside the provider: the new definition waits for it, so
                    # two corrections never run at once.
                    fresh.pending, fresh.acting = tracked.pending, True
                self._tracked[key] = fresh
                self._judge(key)

    def on_state(self, state: ServiceState) -> None:
        """Provider listener: judge the new state, then pass it on, annotated."""
        key = (state.application, state.service)
        tracked = self._tracked.get(key)
        if tracked is None or self._closed:
            self._forward(state)  # not desired, or shutting down: nothing to judge
            return
        tracked.state = state
        self._judge(key)

    def _judge(self, key: Key) -> None:
        tracked = self._tracked[key]
        state = tracked.state
        if state is None:
            return
        target = tracked.desired.target
        now = self._clock.monotonic()
        if not has_drift(state.status, target) or state.status in _IN_TRANSITION:
            tracked.gave_up = False
            if tracked.ok_since is None:
                tracked.ok_since = now
            self._cancel(tracked)
            self._emit(tracked, Convergence.OK)
            return
        if tracked.ok_since is not None and now - tracked.ok_since >= STABLE_AFTER:
            tracked.attempts = 0  # it held its target a good while: a new streak
            tracked.backoff.reset()
        tracked.ok_since = None
        if tracked.attempts >= tracked.desired.max_attempts and not tracked.gave_up:
            tracked.gave_up = True
            log.error(
                "%s/%s: failed to converge to %s after %d attempts",
                *key,
                target,
                tracked.attempts,
            )
        if tracked.desired.policy is Policy.OBSERVE:
            self._emit(tracked, Convergence.OBSERVED)
        elif tracked.gave_up:
            self._emit(tracked, Convergence.FAILED)
        else:
            self._emit(tracked, Convergence.CONVERGING)
            if tracked.pending is None and not self._closed:
                delay = tracked.backoff.next_delay()
                tracked.pending = self._tg.create_task(self._attempt(key, tracked, delay))

    async def _attempt(self, key: Key, tracked: _Tracked, delay: float) -> None:
        # `pending` stays set until the attempt is over, so close() can cancel it mid-act.
        try:
            await asyncio.sleep(delay)
            if self._closed or self._tracked.get(key) is not tracked or tracked.state is None:
                return
            if not has_drift(tracked.state.status, tracked.desired.target):
                return
            tracked.attempts += 1
            running = tracked.desired.target is TargetStatus.RUNNING
            kind = ActionKind.START if running else ActionKind.STOP
            app, service = key
            tracked.acting = True
            try:
                line = await self._act(app, service, kind)
                log.info(
                    "%s/%s: brought towards %s: %s", app, service, tracked.desired.target, line
                )
            except Exception as err:  # any failure is one failed attempt, never the end of us
                log.warning("%s/%s: attempt %d failed: %s", app, service, tracked.attempts, err)
        finally:
            # Whoever tracks this service now (a new desired state may have replaced
            # `tracked` meanwhile) is free to schedule again.
            for holder in (tracked, self._tracked.get(key)):
                if holder is not None and holder.pending is asyncio.current_task():
                    holder.pending, holder.acting = None, False
        if not self._closed and key in self._tracked:
            self._judge(key)

    def _emit(self, tracked: _Tracked, convergence: Convergence) -> None:
        assert tracked.state is not None
        if tracked.state.convergence is not convergence:
            tracked.state = tracked.state.model_copy(update={"convergence": convergence})
        self._forward(tracked.state)

    @staticmethod
    def _cancel(tracked: _Tracked) -> None:
        """Call off a scheduled attempt. One already inside the provider is let finish: cut
        short there, it could leave a process started and unrecorded."""
        if tracked.acting:
            return
        if tracked.pending is not None and tracked.pending is not asyncio.current_task():
            tracked.pending.cancel()
        tracked.pending = None

    def close(self) -> list[asyncio.Task[None]]:
        """Stop correcting: the agent is shutting down and stopping services on purpose.

        Returns the attempts still inside a provider; the caller waits for them (bounded)
        before closing the providers, so nothing is started after the services are stopped.
        """
        self._closed = True
        acting = [t.pending for t in self._tracked.values() if t.acting and t.pending]
        for tracked in self._tracked.values():
            self._cancel(tracked)
        return acting
