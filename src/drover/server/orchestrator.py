"""Actions, from request to recorded result.

submit:     resolve targets → commit to the system of record (one row per host, `pending`) →
            wake the dispatcher, and answer at once: a slow bus never holds up the caller.
dispatch:   publish every `pending` row to its host's subject, then mark it `dispatched`.
            A row whose publish failed (the bus is down), or that was published just before
            the server died, is published again; JetStream de-duplicates by message id, and
            the agent's ledger would answer a second copy without running it.
results:    the results stream → the system of record; ack only after the commit. A result
            for a row already final (expired by the server) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TypeVar

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import ActionRequest, ActionResult, decode
from drover.config.schema import FleetConfig
from drover.model.action import ActionKind, HostOutcome
from drover.ops.clock import Clock
from drover.server.errors import Unprocessable
from drover.server.fleet import FleetView
from drover.server.targeting import resolve
from drover.store.actions import Action, ActionStore, Dispatch, HostResult

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = timedelta(minutes=10)
# How long past its deadline a host may still answer: it may have begun just before it.
DEFAULT_ANSWER_GRACE = timedelta(minutes=5)
DISPATCH_CONCURRENCY = 256

T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def new_action_id() -> str:
    return uuid.uuid4().hex[:16]


class Orchestrator:
    def __init__(
        self,
        store: ActionStore,
        bus: Bus,
        fleet: FleetView,
        active_config: Callable[[], FleetConfig | None],
        clock: Clock,
        answer_grace: timedelta = DEFAULT_ANSWER_GRACE,
        discovered: Callable[[str], Mapping[str, set[str]]] = lambda application: {},
    ) -> None:
        self._discovered = discovered
        self._store = store
        self._bus = bus
        self._fleet = fleet
        self._active_config = active_config
        self._clock = clock
        self._answer_grace = answer_grace
        self._wake = asyncio.Event()

    async def submit(
        self,
        kind: ActionKind,
        application: str,
        service: str | None,
        hosts: Sequence[str] | None,
        requested_by: str,
        deadline: timedelta = DEFAULT_DEADLINE,
    ) -> Action:
        config = self._active_config()
        if config is None:
            raise Unprocessable("no valid configuration is active yet")
        found = self._discovered(application)
        target = resolve(config, self._fleet.hosts, application, service, hosts, found)
        now = self._clock.now()
        action = Action(
            id=new_action_id(),
            kind=kind,
            application=target.application,
            services=target.services,
            requested_by=requested_by,
            created_at=now,
            deadline=now + deadline,
            hosts=[_pending(h) for h in target.hosts],
        )
        await self._store.create(action)
        log.info(
            "action %s: %s %s on %d hosts by %s",
            action.id,
            kind,
            application,
            len(target.hosts),
            requested_by,
        )
        self._wake.set()  # the dispatcher sends it; the caller does not wait on the bus
        return action

    async def dispatch(self) -> None:
        """Send every committed, unsent request; then wait for new ones (or retry in 2 s).

        Also expires what hosts never answered: a row still open `answer_grace` past its
        action's deadline becomes `expired`, so no action stays `running` for ever.
        """
        while True:
            self._wake.clear()
            pending = await self._store.undispatched()
            sent: list[tuple[str, str]] = []
            for chunk in _chunks(pending, DISPATCH_CONCURRENCY):
                outcomes = await asyncio.gather(
                    *(self._send(d) for d in chunk), return_exceptions=True
                )
                for dispatch, outcome in zip(chunk, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        self._bus.counters.inc("server.dispatch_failures")
                    else:
                        sent.append((dispatch.action_id, dispatch.host))
            now = self._clock.now()
            await self._store.mark_dispatched(sent, now)
            expired = await self._store.expire_overdue(now - self._answer_grace, now)
            if expired:
                log.warning("%d host(s) never answered by their action's deadline", expired)
            if len(sent) < len(pending) or len(pending) == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=2.0)

    async def _send(self, dispatch: Dispatch) -> None:
        # The store's Dispatch carries exactly the request's fields, by name.
        request = ActionRequest.model_validate(dispatch, from_attributes=True)
        await self._bus.publish(
            subjects.action_subject(dispatch.host),
            request,
            msg_id=subjects.dispatch_msg_id(dispatch.action_id, dispatch.host),
        )

    async def consume_results(self) -> None:
        """One life of the results loop; returns after a reconnect to be recreated."""
        await consume(
            self._bus,
            stream=subjects.RESULTS_STREAM,
            subject=subjects.RESULTS_ALL,
            durable=subjects.SERVER_RESULTS_CONSUMER,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_deliver=-1),
            handle=self._take_result,
            batch=256,
        )

    async def _take_result(self, msg: Msg) -> None:
        try:
            result = decode(ActionResult, msg.subject, msg.data)
        except MalformedMessage as err:
            await self._drop(msg, str(err))
            return
        if msg.subject != subjects.result_subject(result.host):
            # One writer per subject: a host answers only for itself.
            await self._drop(msg, f"result for host {result.host!r} published on {msg.subject}")
            return
        recorded = await self._store.record_result(
            result.action_id, _host_result(result), self._clock.now()
        )
        if not recorded:
            log.warning(
                "late or unknown result for %s on %s (%s) ignored: the row is already final",
                result.action_id,
                result.host,
                result.outcome,
            )
        await msg.ack()

    async def _drop(self, msg: Msg, why: str) -> None:
        self._bus.counters.inc("server.malformed_messages")
        log.warning("dropped message on %s: %s", msg.subject, why)
        await msg.term()


def _pending(host: str) -> HostResult:
    return HostResult(host, HostOutcome.PENDING, None, None, None, None, "")


def _host_result(result: ActionResult) -> HostResult:
    return HostResult(
        result.host,
        result.outcome,
        result.exit_code,
        result.started_at,
        result.finished_at,
        result.duration_s,
        result.output,
    )
