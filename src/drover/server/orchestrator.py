"""Actions, from request to recorded result.

submit:     resolve targets → commit to the system of record (one row per host, `pending`) →
            wake the dispatcher, and answer at once: a slow bus never holds up the caller.
dispatch:   publish every `pending` row to its host's subject, then mark it `dispatched`.
            A row whose publish failed (the bus is down), or that was published just before
            the server died, is published again; JetStream de-duplicates by message id, and
            the agent's ledger would answer a second copy without running it.
cancel:     recorded, then the next look at the rollouts halts it: unsent hosts `skipped`;
            with `abort_running`, running hosts `cancelled` and an abort committed for each.
            The same loop publishes every abort committed and not yet stored by the bus (to
            the host's abort subject, de-duplicated by message id) until the bus stores it.
results:    the results stream → the system of record; ack only after the commit. A result
            for a row already final (expired by the server) is logged and dropped, unless it
            replaces the server's own decision (store/actions.py `record_result`). A result
            the database refuses as it came is stored without its output, so that it neither
            blocks the results behind it nor is lost; one that fails because the database is
            out of reach is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import (
    AbortRequest,
    ActionRequest,
    ActionResult,
    Message,
    ServiceState,
    decode,
    encode,
)
from drover.bus.trust import signing
from drover.bus.trust.keys import KeyPair
from drover.config.schema import FleetConfig
from drover.model.action import UNANSWERED, ActionKind, HostOutcome
from drover.model.approval import Approval, Subject, applicable, kind_label, open_request
from drover.model.command import CommandInvocation, ParamError, invoke
from drover.model.rollout import (
    HALTED,
    CancelRequest,
    Dispatch,
    Done,
    Expire,
    Halt,
    HostProgress,
    Rollout,
    RolloutState,
    Wait,
    decide,
    held_since,
)
from drover.model.schedule import SCHEDULE_PREFIX, in_any
from drover.model.status import Convergence, ServiceStatus, TargetStatus
from drover.model.strategy import Strategy, plan
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.ops.logging import CORRELATION, correlated
from drover.server.errors import Conflict, NotFound, Unprocessable, no_active_config
from drover.server.fleet import FleetView
from drover.server.targeting import Target, resolve
from drover.store.actions import (
    AbortSend,
    Action,
    ActionStore,
    CancelChange,
    HostResult,
)
from drover.store.actions import Dispatch as Send
from drover.store.approvals import ApprovalStore
from drover.store.audit import AuditEntry, AuditLog
from drover.store.errors import refused_value

log = logging.getLogger(__name__)

# A fetch of results waits this long at most. nats-py's fetch of a batch waits for the whole
# batch (256) until then once the first result is in: with 2 s, the answers of a fleet-wide
# action trickling in were recorded in 2 s steps. One server's fetches this often cost nothing.
RESULTS_POLL = 0.25

# The dispatcher looks at least this often (seconds); a wake-up makes it look at once.
LOOK_EVERY = 2.0

DEFAULT_DEADLINE = timedelta(minutes=10)
# How long past its deadline a host may still answer: it may have begun just before it.
DEFAULT_ANSWER_GRACE = timedelta(minutes=5)
DEFAULT_OUTPUT_LIMIT = 64 * 1024 * 1024  # bytes of a command's output kept per host
DISPATCH_CONCURRENCY = 256
# How long a cancel waits for the dispatcher to act on it (halt, aborts sent), so that its
# answer shows what happened; past it, the answer shows what is recorded so far.
CANCEL_SETTLE = 5.0
INT32 = range(-(2**31), 2**31)  # what an integer column holds on every database we support

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
        *,
        approvals: ApprovalStore,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        signer: KeyPair,
        audit: AuditLog | None = None,
        drives: Callable[[], bool] = lambda: True,
    ) -> None:
        # Whether this process's dispatcher runs (it holds the lease, server/lease.py): a
        # cancel waits for its next look only then, else the holder acts within its poll.
        self._drives = drives
        self._audit = audit
        self._signer = signer  # every action and abort goes out signed (bus/trust/signing.py)
        self._discovered = discovered
        self._approvals = approvals
        self._output_limit = output_limit
        self._store = store
        self._bus = bus
        self._fleet = fleet
        self._active_config = active_config
        self._clock = clock
        self._answer_grace = answer_grace
        self._wake = asyncio.Event()
        self._telling: set[asyncio.Task[None]] = set()  # wake-ups on their way to the driver
        # Looks at the rollouts begun and finished by the dispatcher: a cancel waits for one
        # begun after it was recorded.
        self._looks_begun = 0
        self._looks_done = 0
        self._looked = asyncio.Condition()

    def plan(
        self,
        application: str,
        service: str | None,
        hosts: Sequence[str] | None,
        strategy: Strategy,
        groups: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        for_command: bool = False,
    ) -> tuple[Target, list[list[str]]]:
        """What an action would do: its target, and its hosts batch by batch. Runs nothing."""
        config = self._active_config()
        if config is None:
            raise no_active_config()
        found = self._discovered(application)
        target = resolve(
            config,
            self._fleet.hosts,
            application,
            service,
            hosts,
            found,
            groups=groups,
            labels=labels,
            for_command=for_command,
        )
        return target, plan(target.hosts, strategy)

    async def submit(
        self,
        kind: ActionKind,
        application: str,
        service: str | None,
        hosts: Sequence[str] | None,
        requested_by: str,
        deadline: timedelta = DEFAULT_DEADLINE,
        strategy: Strategy | None = None,
        groups: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        command: str | None = None,
        params: Mapping[str, object] | None = None,
    ) -> Action:
        """Commit the action, every host `pending` in its batch; the rollout loop releases the
        batches (the first at once) and the dispatcher sends them.

        A `command` action names one of the application's commands and its `params`; they are
        checked and the argv rendered here (a mistake is a 422 naming the parameter), and the
        action records and sends exactly that.

        An action the approval policies cover is committed `pending-approval` with its request,
        and nothing is released until the request is approved (server/approvals.py). Its
        deadline then counts from the approval; until then it is a bound: the request's open
        time plus the action's own."""
        chosen = (strategy or Strategy()).model_copy(
            update={"deadline_s": deadline.total_seconds()}
        )
        is_command = kind is ActionKind.COMMAND
        _check_command_fields(kind, service, command, params)
        # A command and a ping go to every host of the application, whatever it runs there.
        to_hosts = is_command or kind is ActionKind.PING
        target, batches = self.plan(
            application, service, hosts, chosen, groups, labels, for_command=to_hosts
        )
        invocation = self._invocation(target.application, command, params) if is_command else None
        now = self._clock.now()
        action_id = new_action_id()
        name = invocation.name if invocation else None
        approval = self._approval_for(
            action_id, target.application, kind_label(kind.value, name), requested_by, now
        )
        held_for = approval.open_until - now if approval else timedelta(0)
        action = Action(
            id=action_id,
            kind=kind,
            application=target.application,
            services=target.services,
            requested_by=requested_by,
            created_at=now,
            deadline=now + held_for + deadline,
            hosts=sorted(
                (_pending(h, n) for n, batch in enumerate(batches) for h in batch),
                key=lambda h: h.host,
            ),
            strategy=chosen,
            rollout_state=RolloutState.PENDING_APPROVAL if approval else RolloutState.RUNNING,
            approval=approval,
            command=invocation,
            correlation=CORRELATION.get(),
        )
        detail = {
            "kind": kind.value,
            "application": action.application,
            "services": action.services,
            "hosts": len(target.hosts),
            "batches": len(batches),
            "strategy": chosen.model_dump(mode="json", exclude_defaults=True),
        }
        if invocation is not None:
            detail |= {"command": invocation.name, "params": invocation.params}
        await self._store.create(
            action, AuditEntry(requested_by, "action.requested", action.id, now, detail)
        )
        log.info(
            "action %s: %s %s on %d hosts in %d batches by %s",
            action.id,
            kind,
            application,
            len(target.hosts),
            len(batches),
            requested_by,
        )
        if approval is not None:
            log.info(
                "action %s: held for approval until %s (%s)",
                action.id,
                approval.open_until.isoformat(timespec="seconds"),
                "; ".join(f"{p.name}: {p.required}" for p in approval.policies),
            )
        self.wake()  # the dispatcher sends it; the caller does not wait on the bus
        return action

    def _invocation(
        self, application: str, command: str | None, params: Mapping[str, object] | None
    ) -> CommandInvocation:
        """The command checked against its declaration and rendered, or a 404/422 saying why."""
        config = self._active_config()
        app = config.applications.get(application) if config else None
        assert app is not None and command is not None  # `plan` found it; checked before
        spec = app.commands.get(command)
        if spec is None:
            has = ", ".join(sorted(app.commands)) or "none"
            raise NotFound(
                f"application {application!r} has no command {command!r} (it has: {has})"
            )
        try:
            return invoke(command, spec, params or {}, self._output_limit)
        except ParamError as err:
            raise Unprocessable(f"params.{err.param}: {err.why}") from err

    def _approval_for(
        self, action_id: str, application: str, kind: str, requested_by: str, now: datetime
    ) -> Approval | None:
        """The approval request the active config's policies ask for; None: none applies."""
        config = self._active_config()
        if config is None:
            raise no_active_config()
        app = config.applications.get(application)
        environment = app.environment if app is not None else "default"
        subject = Subject(application, environment, kind)
        policies = applicable(config.approvals, subject)
        if requested_by.startswith(SCHEDULE_PREFIX):  # a schedule's, inside a policy's window
            policies = tuple(p for p in policies if not in_any(p.preapproved, now))
        return open_request(action_id, subject, policies, requested_by, now) if policies else None

    def wake(self) -> None:
        """Look at the rollouts now: one was released (an approval), or changed. When another
        server drives them, it is told over the bus (SERVER_WAKE); else it would see the change
        at its next look, up to 2 s later."""
        self._wake.set()
        if not self._drives():
            told = asyncio.get_running_loop().create_task(self._wake_the_driver())
            self._telling.add(told)
            told.add_done_callback(self._telling.discard)

    async def _wake_the_driver(self) -> None:
        try:
            await self._bus.announce(subjects.SERVER_WAKE, b"")
        except (nats.errors.Error, OSError) as err:
            log.debug("could not wake the driving server (it looks within 2 s): %r", err)

    async def _woken(self, _msg: Msg) -> None:
        self._wake.set()

    async def cancel(self, action_id: str, abort_running: bool, by: str) -> Action:
        """Cancel a rollout, or abort the hosts still running after it halted; the action as
        the dispatcher left it after acting on the cancel (within CANCEL_SETTLE)."""
        now = self._clock.now()
        entry = AuditEntry(
            by, "action.cancel_requested", action_id, now, {"abort_running": abort_running}
        )
        change = await self._store.request_cancel(
            action_id, CancelRequest(abort_running, by), entry
        )
        if change is None:
            found = await self._store.get(action_id)
            if found is None:
                raise NotFound(f"no action {action_id!r}")
            # Held for approval: withdrawing the request ends it; nothing was ever sent.
            if not await self._approvals.cancel(action_id, by, now):
                # Approved between the two steps: it is a running rollout now, and a cancel
                # must stop it rather than be lost.
                change = await self._store.request_cancel(
                    action_id, CancelRequest(abort_running, by), entry
                )
                if change is None:
                    found = await self._store.get(action_id)
                    assert found is not None
                    raise Conflict(_why_not_cancelled(found, abort_running))
        log.info(
            "action %s: cancel asked by %s (abort running: %s): %s",
            action_id,
            by,
            abort_running,
            change or "approval request withdrawn",
        )
        if change is not CancelChange.REPEATED:
            await self._after_next_look(CANCEL_SETTLE)
        found = await self._store.get(action_id)
        assert found is not None
        return found

    async def _after_next_look(self, bound: float) -> None:
        """Wake the dispatcher and wait until it has looked at every rollout (and sent the
        aborts due) once since now; at most `bound` seconds."""
        if not self._drives():
            self.wake()  # the driver acts; this server answers with the action as recorded
            return
        async with self._looked:
            after = self._looks_begun
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(bound):
                    await self._looked.wait_for(lambda: self._looks_done > after)

    async def _look_begins(self) -> None:
        async with self._looked:
            self._looks_begun += 1

    async def _look_done(self) -> None:
        async with self._looked:
            self._looks_done = self._looks_begun
            self._looked.notify_all()

    async def _drive_rollouts(self) -> float:
        """Take every rollout in progress one step further; seconds until one needs a look."""
        next_look = LOOK_EVERY
        for action in await self._store.in_progress():
            try:
                with correlated(action.correlation):
                    wait = await self._drive(action)
            except (SQLAlchemyError, ValueError, AssertionError) as err:
                # One broken record must not hold up every other action.
                self._bus.counters.inc("server.rollout_errors")
                log.error("action %s: cannot take its rollout further: %r", action.id, err)
                continue
            if wait is not None:
                next_look = min(next_look, wait)
        return max(0.05, next_look)

    async def _drive(self, action: Action) -> float | None:
        assert action.strategy is not None
        state = action.rollout_state or RolloutState.RUNNING
        rollout = Rollout(
            plan=_plan_of(action),
            strategy=action.strategy,
            started_at=action.released_at or action.created_at,
            state=state if state in HALTED else RolloutState.RUNNING,
            cancel=action.cancel,
        )
        for _ in range(len(rollout.plan) + 4):  # every step but Wait and Done changes the record
            now = self._clock.now()
            progress = {
                h.host: HostProgress(h.outcome, h.sent_at, h.finished_at) for h in action.hosts
            }
            # Read only by a health gate: without one, a look at every host's services for
            # nothing, on every look (each answered batch of a 10,000-host action brings one).
            health = (
                {h.host: self._held_since(action, h.host) for h in action.hosts}
                if action.strategy.health_gate_s > 0
                else {}
            )
            step = decide(rollout, progress, health, now, self._answer_grace)
            match step:
                case Dispatch(batch=batch, hosts=hosts):
                    deadline = rollout.host_deadline(now)
                    entry = _by_drover(
                        "action.batch_released",
                        action.id,
                        now,
                        batch=batch + 1,
                        of=len(rollout.plan),
                        hosts=list(hosts),
                    )
                    await self._store.release(action.id, hosts, now, deadline, entry)
                    log.info(
                        "action %s: batch %d of %d sent (%s)",
                        action.id,
                        batch + 1,
                        len(rollout.plan),
                        ", ".join(hosts),
                    )
                case Expire(hosts=hosts, why=why):
                    marks = dict.fromkeys(hosts, HostOutcome.EXPIRED)
                    entry = _by_drover(
                        "action.hosts_expired", action.id, now, hosts=list(hosts), why=why
                    )
                    await self._store.mark(action.id, marks, why, now, entry)
                case Halt(state=halted, reason=reason, marks=marks, abort=abort):
                    entry = _by_drover(
                        "action.halted",
                        action.id,
                        now,
                        state=halted.value,
                        reason=reason,
                        marked={host: outcome.value for host, outcome in marks.items()},
                        abort=list(abort),
                    )
                    await self._store.halt(
                        action.id, halted, reason, marks, now, entry, abort=abort
                    )
                    rollout = replace(rollout, state=halted)
                    log.warning("action %s: %s: %s", action.id, halted, reason)
                case Wait(until=until):
                    return (until - now).total_seconds()
                case Done(state=final, summary=summary):
                    if action.rollout_state is not final:
                        entry = _by_drover(
                            "action.finished", action.id, now, state=final.value, summary=summary
                        )
                        await self._store.set_rollout_state(action.id, final, summary, entry)
                        began = action.released_at or action.created_at
                        self._bus.metrics.actions.labels(action.kind.value, final.value).observe(
                            (now - began).total_seconds()
                        )
                        for host in action.hosts:
                            self._bus.metrics.host_results.labels(_how_it_ended(host)).inc()
                    return None
            reloaded = await self._store.get(action.id)
            assert reloaded is not None
            action = reloaded
        return 0.0

    def _held_since(self, action: Action, host: str) -> datetime | None:
        """Since when the action's services on `host` have all been at their target, as the
        agent judges it (its reconciler knows the target in force, overrides included)."""
        states = [
            s
            for s in self._fleet.services_of(host)
            if s.application == action.application
            and (not action.services or s.service in action.services)
        ]
        status = self._fleet.host_status(host, self._clock.now())
        if status is None or not status.online:
            return None  # its last report may be all that is left of it
        if not states or any(s.convergence is None for s in states):
            return None  # not reported, or not judged yet
        return held_since((s.status, _target_judged(s), s.since) for s in states)

    async def dispatch(self) -> None:
        """Send every committed, unsent request; then wait for new ones (or retry in 2 s).

        Also expires what hosts never answered: a row still open `answer_grace` past its
        action's deadline becomes `expired`, so no action stays `running` for ever.
        """
        wakes: Subscription | None = None
        generation = -1
        try:
            while True:
                if self._bus.generation != generation:  # a new connection: listen again
                    generation = self._bus.generation
                    wakes = await self._listen_for_wakes(wakes)
                await self._dispatch_once()
        finally:
            if wakes is not None:
                with contextlib.suppress(nats.errors.Error):
                    await wakes.unsubscribe()

    async def _listen_for_wakes(self, old: Subscription | None) -> Subscription:
        """Other servers' wake-ups (SERVER_WAKE): what they took (a request, a result, an
        approval, a cancel) is acted on at once."""
        if old is not None:
            with contextlib.suppress(nats.errors.Error):
                await old.unsubscribe()
        return await self._bus.nc.subscribe(subjects.SERVER_WAKE, cb=self._woken)

    async def _dispatch_once(self) -> None:
        """One look: drive the rollouts, send what is due, expire what is overdue; then wait
        for a wake-up (or 2 s) unless more is waiting to be sent."""
        self._wake.clear()
        await self._look_begins()
        await self._expire_approvals()
        next_look = await self._drive_rollouts()
        await self._send_aborts()
        await self._look_done()
        pending = await self._store.undispatched()
        sent: list[tuple[str, str]] = []
        for chunk in _chunks(pending, DISPATCH_CONCURRENCY):
            outcomes = await asyncio.gather(*(self._send(d) for d in chunk), return_exceptions=True)
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
                await bounded(self._wake.wait(), min(LOOK_EVERY, next_look))

    async def _expire_approvals(self) -> None:
        """Requests not decided in time end here: their actions never run. Several server
        processes may do this at once; the store expires each request once."""
        for action_id in await self._approvals.expire_due(self._clock.now()):
            log.warning("action %s: not approved in time; it will not run", action_id)

    async def _send_aborts(self) -> None:
        """Publish every abort committed and not yet stored by the bus. One whose publish
        fails stays due and is tried on the next look (at least every 2 s)."""
        due = await self._store.aborts_to_send()
        sent: list[tuple[str, str]] = []
        failed = 0
        for chunk in _chunks(due, DISPATCH_CONCURRENCY):
            outcomes = await asyncio.gather(
                *(self._send_abort(a) for a in chunk), return_exceptions=True
            )
            for abort, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failed += 1
                    self._bus.counters.inc("server.abort_failures")
                else:
                    sent.append((abort.action_id, abort.host))
        await self._store.mark_aborts_sent(sent, self._clock.now())
        for action_id, host in sent:
            log.info("action %s: abort sent to %s", action_id, host)
        if failed:
            log.warning("%d abort(s) not sent (the bus did not store them); trying again", failed)

    async def _send_abort(self, abort: AbortSend) -> None:
        request = AbortRequest(
            action_id=abort.action_id,
            host=abort.host,
            requested_by=abort.requested_by,
            requested_at=abort.requested_at,
        )
        await self._publish_signed(
            subjects.abort_subject(abort.host),
            request,
            subjects.abort_msg_id(abort.action_id, abort.host),
        )

    async def _send(self, dispatch: Send) -> None:
        # The store's Dispatch carries exactly the request's fields, by name.
        request = ActionRequest.model_validate(dispatch, from_attributes=True)
        with correlated(dispatch.correlation):
            await self._publish_signed(
                subjects.action_subject(dispatch.host),
                request,
                subjects.dispatch_msg_id(dispatch.action_id, dispatch.host),
            )

    async def _publish_signed(self, subject: str, request: Message, msg_id: str) -> None:
        payload = encode(request)
        headers = signing.sign(self._signer, payload)
        await self._bus.publish(subject, payload, msg_id=msg_id, headers=headers)

    async def consume_results(self) -> None:
        """One life of the results loop; returns after a reconnect to be recreated."""
        await consume(
            self._bus,
            stream=subjects.RESULTS_STREAM,
            subject=subjects.RESULTS_ALL,
            durable=subjects.SERVER_RESULTS_CONSUMER,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_deliver=-1),
            handle_batch=self._take_results,
            batch=256,
            poll=RESULTS_POLL,
        )

    async def _take_results(self, batch: list[Msg]) -> None:
        """A batch of results recorded in one transaction: the answers of a fleet-wide action
        come by the thousand. Should the database refuse the batch for what one result holds,
        each is stored on its own, so that only that one is stored without its output."""
        taken = await self._results_to_record(batch)
        if not taken:
            return
        try:
            recorded = await self._store.record_results(
                [(r.action_id, _host_result(r), entry) for _, r, entry in taken],
                self._clock.now(),
            )
        except Exception as err:
            if not refused_value(err):
                # The database is out of reach or busy: the loop backs off, and these results
                # come again in a second (not only once their ack_wait has passed).
                await _nak_all([msg for msg, _, _ in taken], delay=1.0)
                raise
            for msg, result, entry in taken:
                with correlated(result.correlation):
                    await self._take_one(result, entry, msg)
            return
        for (msg, result, _), stored in zip(taken, recorded, strict=True):
            if stored:
                _log_taken(result)
            else:
                _log_late(result)
            await msg.ack()
        if any(recorded):
            self.wake()  # the rollout may take its next step now

    async def _results_to_record(
        self, batch: list[Msg]
    ) -> list[tuple[Msg, ActionResult, AuditEntry]]:
        """The results of `batch` for an action's record, each with its audit entry; the
        others are done with here (dropped, or audited as a host's refusal)."""
        taken = []
        for msg in batch:
            decoded = await self._decoded_result(msg)
            if decoded is None:
                continue
            result, entry = decoded
            if result.refused:
                await self._take_refusal(result, entry)
                await msg.ack()
            else:
                taken.append((msg, result, entry))
        return taken

    async def _decoded_result(self, msg: Msg) -> tuple[ActionResult, AuditEntry] | None:
        """The result in `msg` and its audit entry; None if it was dropped (malformed, or for
        another host than its subject's)."""
        try:
            result = decode(ActionResult, msg.subject, msg.data)
        except MalformedMessage as err:
            await self._drop(msg, str(err))
            return None
        if msg.subject != subjects.result_subject(result.host):
            # One writer per subject: a host answers only for itself.
            await self._drop(msg, f"result for host {result.host!r} published on {msg.subject}")
            return None
        entry = AuditEntry(
            f"agent:{result.host}",
            "action.host_result",
            result.action_id,
            self._clock.now(),
            {
                "host": result.host,
                "outcome": result.outcome.value,
                "exit_code": result.exit_code,
                "duration_s": result.duration_s,
            },
        )
        return result, entry

    async def _take_one(self, result: ActionResult, entry: AuditEntry, msg: Msg) -> None:
        now = entry.at
        try:
            recorded = await self._store.record_result(
                result.action_id, _host_result(result), now, entry
            )
        except Exception as err:
            if not refused_value(err):
                await _nak_all([msg], delay=1.0)  # as above
                raise
            recorded = await self._record_unstorable(result, err, now)
        if recorded:
            _log_taken(result)
            self.wake()  # the rollout may take its next step now
        else:
            _log_late(result)
        await msg.ack()

    async def _take_refusal(self, result: ActionResult, entry: AuditEntry) -> None:
        """An agent refused a request for what it was (unsigned, forged, misaddressed): on the
        audit trail and in the log, never on an action's record. Its action id is whatever the
        forger wrote; the real action of that id, if there is one, still gets its real answer."""
        self._bus.counters.inc("server.refused_by_agents")
        log.warning(
            "host %s refused a request with action id %s: %s",
            result.host,
            result.action_id,
            result.refused,
        )
        if self._audit is not None:
            detail = {"host": result.host, "refused": result.refused}
            await self._audit.record(replace(entry, kind="action.refused_by_agent", detail=detail))

    async def _record_unstorable(self, result: ActionResult, err: Exception, now: datetime) -> bool:
        """Store a result the database refused as it came without what it may have refused:
        its outcome, times and exit code kept, its output replaced by a note saying why. Should
        the database refuse even that, the fault is not in this result's values: the error
        goes up, and the result is tried again like any other that could not be stored."""
        why = _refusal(err)
        self._bus.counters.inc("server.results_unstorable")
        log.error(
            "action %s: the database refused the result of %s (%s) as it came (%s); "
            "storing it without its output",
            result.action_id,
            result.host,
            result.outcome,
            why,
        )
        kept = _storable(result, why)
        entry = AuditEntry(
            f"agent:{result.host}",
            "action.host_result",
            result.action_id,
            now,
            {
                "host": result.host,
                "outcome": result.outcome.value,
                "exit_code": kept.exit_code,
                "duration_s": kept.duration_s,
                "unstorable": why,
            },
        )
        return await self._store.record_result(result.action_id, kept, now, entry)

    async def _drop(self, msg: Msg, why: str) -> None:
        self._bus.counters.inc("server.malformed_messages")
        log.warning("dropped message on %s: %s", msg.subject, why)
        await msg.term()


async def _nak_all(messages: list[Msg], delay: float) -> None:
    for msg in messages:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await msg.nak(delay=delay)


def _log_taken(result: ActionResult) -> None:
    with correlated(result.correlation):
        log.debug("action %s: %s on %s", result.action_id, result.outcome, result.host)


def _log_late(result: ActionResult) -> None:
    with correlated(result.correlation):
        log.warning(
            "late or unknown result for %s on %s (%s) ignored: the row is already final",
            result.action_id,
            result.host,
            result.outcome,
        )


def _how_it_ended(result: HostResult) -> str:
    """A final host result, for the reliability indicator (ops/metrics.py)."""
    if result.outcome is HostOutcome.SUCCEEDED:
        return "completed"
    if result.outcome is HostOutcome.EXPIRED and result.output in UNANSWERED:
        return "unexplained"
    return "identified"


def _check_command_fields(
    kind: ActionKind,
    service: str | None,
    command: str | None,
    params: Mapping[str, object] | None,
) -> None:
    if kind is not ActionKind.COMMAND:
        if command is not None or params:
            raise Unprocessable("'command' and 'params' go with kind 'command' only")
        if kind is ActionKind.PING and service is not None:
            raise Unprocessable("a ping goes to each host, not to a service: leave out 'service'")
        return
    if command is None:
        raise Unprocessable("kind 'command' needs 'command': which of the application's commands")
    if service is not None:
        raise Unprocessable(
            "a command runs once on each host, not on a service: leave out 'service'"
        )


def _pending(host: str, batch: int) -> HostResult:
    return HostResult(host, HostOutcome.PENDING, None, None, None, None, "", batch)


def _by_drover(kind: str, action_id: str, at: datetime, **detail: Any) -> AuditEntry:
    """An entry for a decision of the server's own."""
    return AuditEntry("drover", kind, action_id, at, detail)


def _plan_of(action: Action) -> list[list[str]]:
    batches: dict[int, list[str]] = {}
    for h in action.hosts:
        batches.setdefault(h.batch, []).append(h.host)
    return [sorted(batches[n]) for n in sorted(batches)]


def _target_judged(state: ServiceState) -> TargetStatus:
    """The target the agent judged the service against: where it is when judged `ok`, else the
    other one (the health gate only asks whether it is settled at its target)."""
    up = state.status in (ServiceStatus.RUNNING, ServiceStatus.STARTING)
    at_target = state.convergence is Convergence.OK
    return TargetStatus.RUNNING if up == at_target else TargetStatus.STOPPED


def _why_not_cancelled(action: Action, abort_running: bool) -> str:
    """Why a cancel changed nothing (a 409), and what would."""
    state = action.rollout_state or action.state
    running = [h.host for h in action.hosts if h.sent_at and not h.outcome.is_final]
    if running and not abort_running and action.rollout_state in HALTED:
        few = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
        return (
            f"action {action.id} is already {state}; {len(running)} host(s) still running "
            f"({few}) finish, unless a cancel with abort_running aborts them"
        )
    return f"action {action.id} is no longer running ({state})"


def _refusal(err: Exception) -> str:
    """What the database said, short and printable (its message may quote the refused value,
    which must not be refused again on its way into the note)."""
    cause = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
    text = str(cause).splitlines()[0] if str(cause) else ""
    text = "".join(c if " " <= c <= "~" else "?" for c in text)[:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _storable(result: ActionResult, why: str) -> HostResult:
    """The parts of a refused result every database takes: the outcome and times, the exit code
    and chunk count when they are integers a column holds, and a note instead of the output."""
    finite = result.duration_s == result.duration_s and abs(result.duration_s) < 1e12
    return HostResult(
        result.host,
        result.outcome,
        result.exit_code if result.exit_code in INT32 else None,
        result.started_at,
        result.finished_at,
        result.duration_s if finite else None,
        f"[drover: the database refused this result as it came ({why}); "
        "it is stored without its output]",
        output_chunks=result.output_chunks if result.output_chunks in INT32 else None,
    )


def _host_result(result: ActionResult) -> HostResult:
    return HostResult(
        result.host,
        result.outcome,
        result.exit_code,
        result.started_at,
        result.finished_at,
        result.duration_s,
        # PostgreSQL's text cannot hold NUL, which a command may well print.
        result.output.replace("\x00", "\ufffd"),
        output_chunks=result.output_chunks,
    )
