"""Actions, from request to recorded result.

submit:     resolve targets → commit to the system of record (one row per host, `pending`) →
            publish to each host's subject → mark `dispatched`.
redispatch: rows still `pending` (the bus was down, or the server died between commit and
            publish) are published again; JetStream de-duplicates by message id, and the
            agent's ledger would answer a second copy without running it.
results:    the results stream → the system of record; ack only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

import nats.errors
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
from drover.store.actions import Action, ActionStore, HostResult

log = logging.getLogger(__name__)

DEFAULT_DEADLINE = timedelta(minutes=10)


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
    ) -> None:
        self._store = store
        self._bus = bus
        self._fleet = fleet
        self._active_config = active_config
        self._clock = clock

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
        target = resolve(config, self._fleet.hosts, application, service, hosts)
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
        for host in target.hosts:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._dispatch(action, host)  # what fails here, redispatch retries
        return await self._store.get(action.id) or action

    async def _dispatch(self, action: Action, host: str) -> None:
        request = ActionRequest(
            action_id=action.id,
            host=host,
            kind=action.kind,
            application=action.application,
            services=action.services,
            requested_by=action.requested_by,
            created_at=action.created_at,
            deadline=action.deadline,
        )
        await self._bus.publish(
            subjects.action_subject(host), request, msg_id=subjects.dispatch_msg_id(action.id, host)
        )
        await self._store.mark_dispatched(action.id, host, self._clock.now())

    async def redispatch(self) -> None:
        while True:
            for action_id, host in await self._store.undispatched():
                action = await self._store.get(action_id)
                if action is not None:
                    await self._dispatch(action, host)
            await asyncio.sleep(2.0)

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
            log.info(
                "result for %s on %s ignored (unknown or already final)",
                result.action_id,
                result.host,
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
