"""Takes actions from this host's own durable consumer and carries each out exactly once.

For every delivery: decode (malformed → log, count, drop); answer from the ledger if this id
was seen before (finished → the same result again; begun but unfinished → `interrupted`);
refuse it if past its deadline (`expired`); otherwise write the id to the ledger (fsync),
run it, write the result to the ledger, publish it, and only then ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from drover.agent.errors import AgentError
from drover.agent.ledger import Ledger
from drover.agent.providers.base import OperationFailed
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import ActionRequest, ActionResult, decode, tail
from drover.model.action import ActionKind, HostOutcome
from drover.ops.clock import Clock

log = logging.getLogger(__name__)

Act = Callable[[str, str, ActionKind], Awaitable[str]]
ServicesOf = Callable[[str], list[str]]

ACK_WAIT = 60.0
PROGRESS_EVERY = 15.0


class Executor:
    def __init__(
        self,
        host: str,
        bus: Bus,
        ledger: Ledger,
        act: Act,
        clock: Clock,
        services_of: ServicesOf = lambda application: [],
    ) -> None:
        self.host = host
        self._services_of = services_of
        self._bus = bus
        self._ledger = ledger
        self._act = act
        self._clock = clock
        self.stopping = False
        self.executions = 0  # actions really run (not answered from the ledger)
        self.idle = asyncio.Event()
        self.idle.set()

    async def consume(self) -> None:
        """One life of the fetch loop; returns to be recreated after a reconnect."""
        await self._report_interrupted()
        await consume(
            self._bus,
            stream=subjects.ACTIONS_STREAM,
            subject=subjects.action_subject(self.host),
            durable=subjects.agent_actions_consumer(self.host),
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                deliver_policy=DeliverPolicy.ALL,
                max_deliver=-1,
            ),
            handle=self.handle,
            batch=8,
            stopping=lambda: self.stopping,
        )

    async def handle(self, msg: Msg) -> None:
        try:
            request = decode(ActionRequest, msg.subject, msg.data)
        except MalformedMessage as err:
            self._bus.counters.inc("agent.malformed_messages")
            log.warning("dropped: %s", err)
            await msg.term()
            return
        if request.host != self.host:
            self._bus.counters.inc("agent.foreign_actions")
            log.warning("dropped action %s addressed to %s", request.action_id, request.host)
            await msg.term()
            return
        self.idle.clear()
        try:
            result = await self._result_for(request, msg)
            await self._bus.publish(
                subjects.result_subject(self.host),
                result,
                msg_id=subjects.result_msg_id(result.action_id, self.host),
            )
            await msg.ack()
        finally:
            self.idle.set()

    async def _result_for(self, request: ActionRequest, msg: Msg) -> ActionResult:
        seen = self._ledger.lookup(request.action_id)
        if seen is not None and seen.result is not None:
            log.info("action %s redelivered; answering from the ledger", request.action_id)
            return seen.result
        if seen is not None:
            return self._conclude(
                request.action_id, HostOutcome.INTERRUPTED, "agent stopped mid-run"
            )
        if self._clock.now() > request.deadline:
            return self._conclude(request.action_id, HostOutcome.EXPIRED, "deadline passed")
        await asyncio.to_thread(self._ledger.begin, request.action_id)
        return await self._run(request, msg)

    async def _run(self, request: ActionRequest, msg: Msg) -> ActionResult:
        started = self._clock.now()
        self.executions += 1
        # An action on a whole application means what this host runs of it now: hosts differ
        # (discovery finds other units on each), and the config may have changed since.
        services = request.services or self._services_of(request.application)
        log.info(
            "action %s: %s %s %s",
            request.action_id,
            request.kind,
            request.application,
            ",".join(services) or "(no services here)",
        )
        lines, failed = [], not services
        if not services:
            lines.append(f"error: no service of {request.application} runs on this host")
        async with _keep_alive(msg):
            for service in services:
                try:
                    line = await self._act(request.application, service, request.kind)
                except (OperationFailed, AgentError) as err:
                    line, failed = f"error: {err}", True
                except Exception as err:  # a provider bug fails this service, not the action
                    log.exception(
                        "action %s: %s/%s", request.action_id, request.application, service
                    )
                    line, failed = f"error: {err!r}", True
                lines.append(f"{request.application}/{service}: {line}")
        finished = self._clock.now()
        result = ActionResult(
            action_id=request.action_id,
            host=self.host,
            outcome=HostOutcome.FAILED if failed else HostOutcome.SUCCEEDED,
            exit_code=1 if failed else 0,
            started_at=started,
            finished_at=finished,
            duration_s=(finished - started).total_seconds(),
            output=tail("\n".join(lines)),
        )
        await asyncio.to_thread(self._ledger.finish, result)
        return result

    def _conclude(self, action_id: str, outcome: HostOutcome, why: str) -> ActionResult:
        result = ActionResult(
            action_id=action_id,
            host=self.host,
            outcome=outcome,
            finished_at=self._clock.now(),
            output=why,
        )
        self._ledger.finish(result)
        log.info("action %s: %s (%s)", action_id, outcome, why)
        return result

    async def _report_interrupted(self) -> None:
        """Actions begun before a crash are reported `interrupted` at start, not re-run."""
        for action_id in self._ledger.unfinished():
            result = self._conclude(action_id, HostOutcome.INTERRUPTED, "agent stopped mid-run")
            await self._bus.publish(
                subjects.result_subject(self.host),
                result,
                msg_id=subjects.result_msg_id(action_id, self.host),
            )


@contextlib.asynccontextmanager
async def _keep_alive(msg: Msg) -> AsyncIterator[None]:
    """Tell JetStream the action is still being worked on, so it is not redelivered meanwhile."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await msg.in_progress()

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
