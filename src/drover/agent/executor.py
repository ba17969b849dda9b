"""Takes actions from this host's own durable consumer and carries each out exactly once.

For every delivery: check that the server signed it, for this host (bus/trust/signing.py;
refused → logged, counted, reported as `rejected` with the reason, dropped, and not put in the
ledger); decode (malformed → log, count, drop); answer from the ledger if this id
was seen before (finished → the same result again; begun but unfinished → `interrupted`);
refuse it if past its deadline (`expired`); otherwise write the id to the ledger (fsync),
run it, write the result to the ledger, publish it, and only then ack.

An action is either on services (start, stop, restart through the providers) or a command
(agent/commands.py), whose output streams to the server while it runs; either way the message
is kept alive meanwhile, so JetStream does not deliver it again.

Aborts come on a consumer of their own (`aborts-<host>`), followed while an action runs.
An abort of the action running stops it: a command's process group is stopped at once,
services not yet reached are skipped (the provider step under way finishes), and its result
is `cancelled`, naming who aborted it. An abort of an action not begun here writes its
`cancelled` result to the ledger, so that however often the action is delivered later, it is
answered from there and never runs. An abort of an action finished here changes nothing: its
result is sent again. Checking the ledger and beginning an action happen under one lock, so an
abort and the start of its action cannot both miss each other. After every (re)connect, actions
wait (briefly) until the aborts waiting on the bus have been taken: an action aborted while the
agent was away does not start first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
from nats.aio.msg import Msg

from drover.agent.abort import Abort
from drover.agent.commands import CommandRunner
from drover.agent.errors import AgentError
from drover.agent.ledger import Ledger
from drover.agent.providers.base import OperationFailed
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import LONG_POLL, LONG_POLL_STALL_AFTER, consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import AbortRequest, ActionRequest, ActionResult, decode, tail
from drover.bus.trust import signing
from drover.model.action import ActionKind, HostOutcome
from drover.ops.cancels import checkpoint
from drover.ops.clock import Clock
from drover.ops.logging import correlated

log = logging.getLogger(__name__)

Act = Callable[[str, str, ActionKind], Awaitable[str]]
_Request = TypeVar("_Request", ActionRequest, AbortRequest)
ServicesOf = Callable[[str], list[str]]

PROGRESS_EVERY = 15.0  # well within topology.ACTION_ACK_WAIT
# How long actions wait, after a (re)connect, for the aborts waiting on the bus to be taken.
ABORTS_CATCH_UP = 5.0


@dataclass(frozen=True)
class _Done:
    """How an action went on this host, before it becomes a result."""

    outcome: HostOutcome
    exit_code: int | None
    output: str
    chunks: int = 0


@dataclass(frozen=True)
class _Running:
    action_id: str
    abort: Abort


class Executor:
    def __init__(
        self,
        host: str,
        bus: Bus,
        ledger: Ledger,
        act: Act,
        clock: Clock,
        services_of: ServicesOf = lambda application: [],
        commands: CommandRunner | None = None,
        *,
        signer: str,
    ) -> None:
        self.host = host
        self._signer = signer  # the server's public key: what it signed is all that runs
        self._commands = commands or CommandRunner(bus, host)
        self._services_of = services_of
        self._bus = bus
        self._ledger = ledger
        self._act = act
        self._clock = clock
        self.stopping = False
        self.executions = 0  # actions really run (not answered from the ledger)
        self.idle = asyncio.Event()
        self.idle.set()
        # Held while the ledger is read and an action begun, or an abort recorded.
        self._claim = asyncio.Lock()
        self._running: _Running | None = None
        # The bus generation in which the abort consumer last had nothing waiting for it.
        self._aborts_clear_in = -1
        self._aborts_news = asyncio.Event()
        # Results in the ledger that did not reach the bus (the link broke as they went, in
        # this life or an earlier one), by action id: sent first thing when it is back, not
        # only when their action comes again after its ack wait (a minute).
        self._unsent: dict[str, ActionResult] = {r.action_id: r for r in ledger.unsent()}

    async def consume(self) -> None:
        """One life of the fetch loop; returns to be recreated after a reconnect."""
        await self._report_interrupted()
        await self._send_unsent()
        await self._aborts_caught_up(self._bus.generation)
        await consume(
            self._bus,
            stream=subjects.ACTIONS_STREAM,
            subject=subjects.action_subject(self.host),
            durable=subjects.agent_actions_consumer(self.host),
            handle=self.handle,
            # One at a time, as they run: actions fetched ahead would be held by an agent that
            # is killed until their ack wait (a minute) has passed, and then run after the
            # ones its next life took meanwhile, out of order.
            batch=1,
            stopping=lambda: self.stopping,
            poll=LONG_POLL,
            stall_after=LONG_POLL_STALL_AFTER,
        )

    async def handle(self, msg: Msg) -> None:
        request = await self._admit(msg, ActionRequest)
        if request is None:
            return
        self.idle.clear()
        try:
            with correlated(request.correlation):
                result = await self._result_for(request, msg)
                result = result.model_copy(update={"correlation": request.correlation})
                self._unsent[result.action_id] = result
                await self._send_unsent()
                await msg.ack()
        finally:
            self.idle.set()

    async def _admit(self, msg: Msg, kind: type[_Request]) -> _Request | None:
        """The request in `msg` if the server signed it for this host; else None, having
        dropped the message, and reported the refusal when there is an action id to report it
        under. Nothing of a refused request goes into the ledger: its id is not to be trusted,
        and must not keep the real action of that id from running."""
        refused = signing.refusal(msg.headers, msg.data, self._signer)
        try:
            request = decode(kind, msg.subject, msg.data)
        except MalformedMessage as err:
            if refused is None:
                self._bus.counters.inc("agent.malformed_messages")
                log.warning("dropped: %s", err)
                await msg.term()
                return None
            request = None
        if refused is None and request is not None and request.host != self.host:
            refused = f"addressed to host {request.host}, not this one"
        if refused is None:
            return request
        self._bus.counters.inc("agent.refused_requests")
        action_id = request.action_id if request is not None else "?"
        log.warning("refused %s %s on %s: %s", kind.__name__, action_id, msg.subject, refused)
        if request is not None:
            result = ActionResult(
                action_id=request.action_id,
                host=self.host,
                outcome=HostOutcome.REJECTED,
                finished_at=self._clock.now(),
                output=f"refused: {refused}",
                refused=refused,
            )
            await self._bus.publish(subjects.result_subject(self.host), result)
        await msg.term()
        return None

    async def _result_for(self, request: ActionRequest, msg: Msg) -> ActionResult:
        async with self._claim:
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
            if request.kind is ActionKind.PING:
                # Not in the ledger: a ping changes nothing, so answering it twice harms no
                # one, and a fleet-wide ping costs no host two fsyncs.
                return self._pong(request)
            await asyncio.to_thread(self._ledger.begin, request.action_id)
            running = self._running = _Running(request.action_id, Abort())
        try:
            return await self._run(request, msg, running.abort)
        finally:
            self._running = None

    async def _run(self, request: ActionRequest, msg: Msg, abort: Abort) -> ActionResult:
        started = self._clock.now()
        self.executions += 1
        async with _keep_alive(msg):
            if request.kind is ActionKind.COMMAND:
                done = await self._run_command(request, abort)
            else:
                done = await self._act_on_services(request, abort)
        finished = self._clock.now()
        result = ActionResult(
            action_id=request.action_id,
            host=self.host,
            outcome=done.outcome,
            exit_code=done.exit_code,
            started_at=started,
            finished_at=finished,
            duration_s=(finished - started).total_seconds(),
            output=tail(done.output),
            output_chunks=done.chunks,
        )
        await asyncio.to_thread(self._ledger.finish, result)
        self._bus.metrics.actions.labels(request.kind.value, done.outcome.value).observe(
            result.duration_s or 0.0
        )
        return result

    async def _act_on_services(self, request: ActionRequest, abort: Abort) -> _Done:
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
        lines, failed, skipped = [], not services, 0
        if not services:
            lines.append(f"error: no service of {request.application} runs on this host")
        for service in services:
            if abort.requested:  # between two provider steps: the one under way has finished
                lines.append(f"{request.application}/{service}: skipped: aborted by {abort.by}")
                skipped += 1
                continue
            try:
                line = await self._act(request.application, service, request.kind)
            except (OperationFailed, AgentError) as err:
                line, failed = f"error: {err}", True
            except Exception as err:  # a provider bug fails this service, not the action
                log.exception("action %s: %s/%s", request.action_id, request.application, service)
                line, failed = f"error: {err!r}", True
            lines.append(f"{request.application}/{service}: {line}")
        if skipped:
            log.warning(
                "action %s: aborted by %s; %d of %d services skipped",
                request.action_id,
                abort.by,
                skipped,
                len(services),
            )
            return _Done(HostOutcome.CANCELLED, None, "\n".join(lines))
        return _Done(
            HostOutcome.FAILED if failed else HostOutcome.SUCCEEDED,
            1 if failed else 0,
            "\n".join(lines),
        )

    async def _run_command(self, request: ActionRequest, abort: Abort) -> _Done:
        run = request.command
        if run is None:
            return _Done(HostOutcome.REJECTED, None, "error: a command request without a command")
        log.info("action %s: command %s of %s", request.action_id, run.name, request.application)
        report = await self._commands.run(request.action_id, request.application, run, abort)
        output = report.output_tail
        if report.note:
            output += ("" if not output or output.endswith("\n") else "\n") + f"[{report.note}]"
        if report.aborted:
            outcome = HostOutcome.CANCELLED
        else:
            outcome = HostOutcome.SUCCEEDED if report.succeeded else HostOutcome.FAILED
        log.info(
            "action %s: %s exited %s%s",
            request.action_id,
            run.name,
            report.exit_code,
            f" ({report.note})" if report.note else "",
        )
        return _Done(outcome, report.exit_code, output, report.chunks)

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

    def _pong(self, request: ActionRequest) -> ActionResult:
        now = self._clock.now()
        return ActionResult(
            action_id=request.action_id,
            host=self.host,
            outcome=HostOutcome.SUCCEEDED,
            exit_code=0,
            started_at=now,
            finished_at=now,
            duration_s=0.0,
            output="pong",
        )

    async def consume_aborts(self) -> None:
        """One life of the abort loop; returns to be recreated after a reconnect. It runs
        beside the action loop, and on while the agent drains."""
        generation = self._bus.generation
        await consume(
            self._bus,
            stream=subjects.ACTIONS_STREAM,
            subject=subjects.abort_subject(self.host),
            durable=subjects.agent_aborts_consumer(self.host),
            handle=self.handle_abort,
            batch=8,
            poll=LONG_POLL,
            stall_after=LONG_POLL_STALL_AFTER,
            caught_up=lambda: self._aborts_taken(generation),
        )

    async def handle_abort(self, msg: Msg) -> None:
        abort = await self._admit(msg, AbortRequest)
        if abort is None:
            return
        answer = await self._abort(abort)
        if answer is not None:
            await self._bus.publish(
                subjects.result_subject(self.host),
                answer,
            )
        await msg.ack()

    async def _abort(self, abort: AbortRequest) -> ActionResult | None:
        """Carry out an abort; the result to send now, if any (the action running sends its
        own when it ends)."""
        action_id, by = abort.action_id, abort.requested_by
        async with self._claim:
            seen = self._ledger.lookup(action_id)
            if seen is not None and seen.result is not None:
                log.info(
                    "abort of %s by %s: it had ended here (%s)", action_id, by, seen.result.outcome
                )
                return seen.result  # again: the server may not have it yet
            running = self._running
            if running is not None and running.action_id == action_id:
                log.warning("abort of %s by %s: stopping it", action_id, by)
                running.abort.request(by)
                return None
            if seen is not None:
                log.info("abort of %s by %s: cut short before; reported interrupted", action_id, by)
                return None
            result = ActionResult(
                action_id=action_id,
                host=self.host,
                outcome=HostOutcome.CANCELLED,
                finished_at=self._clock.now(),
                output=f"[aborted by {by} before it started: it will not run here]",
            )
            # In the ledger before anything else: when the action itself is delivered (it may
            # be waiting on the bus, or sent just now), it is answered from here.
            await asyncio.to_thread(self._ledger.finish, result)
        log.warning("abort of %s by %s: not begun here; it will not run", action_id, by)
        return result

    def _aborts_taken(self, generation: int) -> None:
        if generation > self._aborts_clear_in:
            self._aborts_clear_in = generation
            self._aborts_news.set()

    async def _aborts_caught_up(self, generation: int) -> None:
        """Wait until the abort loop has taken what waited for it since `generation` began,
        at most ABORTS_CATCH_UP: an abort loop that cannot follow holds up no action."""
        try:
            async with asyncio.timeout(ABORTS_CATCH_UP):
                while self._aborts_clear_in < generation:
                    self._aborts_news.clear()
                    await self._aborts_news.wait()
        except TimeoutError:
            log.warning(
                "aborts waiting on the bus not taken in %gs; taking actions", ABORTS_CATCH_UP
            )

    async def _report_interrupted(self) -> None:
        """Actions begun before a crash are reported `interrupted` at start, not re-run."""
        for action_id in self._ledger.unfinished():
            result = self._conclude(action_id, HostOutcome.INTERRUPTED, "agent stopped mid-run")
            self._unsent[action_id] = result
        await self._send_unsent()

    async def _send_unsent(self) -> None:
        """Publish the results the bus has not taken yet, oldest first; each leaves the list
        once stored. One sent twice (its action came again meanwhile) is recorded once."""
        for action_id, result in list(self._unsent.items()):
            await self._bus.publish(subjects.result_subject(self.host), result)
            del self._unsent[action_id]
            await asyncio.to_thread(self._ledger.sent, action_id)


@contextlib.asynccontextmanager
async def _keep_alive(msg: Msg) -> AsyncIterator[None]:
    """Tell JetStream the action is still being worked on, so it is not redelivered meanwhile."""

    async def beat() -> None:
        while True:
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(PROGRESS_EVERY)
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await msg.in_progress()

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
