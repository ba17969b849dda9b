"""A rollout's progress as a pure state machine, asked on every wake of the orchestrator.

`decide(rollout, hosts, health, now, grace)` answers with one step:

    Dispatch(batch, hosts)  send these hosts now: record `sent_at = now` for each, then publish
    Expire(hosts, why)      sent, no answer by their deadline (and grace): record `expired`
    Halt(state, ..., marks) nothing more will be sent: record the rollout's new `state` and each
                            host's outcome in `marks`, then send an abort to each host in `abort`
    Wait(until, why)        nothing to do now: ask again at `until`, or sooner (the
                            orchestrator asks when a host answers, on a cancel, and every 2 s)
    Done(state, summary)    every host has a final outcome: the rollout is over

The orchestrator applies the step and asks again, until Wait or Done. Every other step changes
what it is asked next, so that loop ends; asking again before a step was recorded is harmless
(a Halt whose marks were lost is given again, a host is dispatched only while unsent).

Rules:
- Failed hosts are those `failed`, `expired`, `interrupted` or `rejected`. More of them than
  the strategy allows stops the rollout (`stopped`): hosts not yet sent are `skipped`; the
  ones running finish.
- A sent host's deadline is `sent_at + host_timeout_s`, never past the rollout's deadline
  (`started_at + deadline_s`); it is the request's deadline, after which the agent refuses to
  start. A host that has not answered `grace` past it is `expired`, a failure. `grace` is the
  orchestrator's answer grace: a host may begin just before its deadline.
- Past the rollout's deadline nothing is sent: hosts not yet sent are `expired` (the rollout
  `expired`); sent ones have until their own deadline and grace.
- A cancel skips the hosts not yet sent. Running hosts finish, or with `abort_running` are
  recorded `cancelled` at once (the server stops waiting) and are each sent an abort; the
  host's own answer, when it comes, replaces that mark with what it really did. A cancel
  without abort can be followed by one with it, which reaches the hosts still running.
- Batches go in plan order. The next one starts when every host of the previous one has
  answered, `pause_s` after the last of those answers, and, with a health gate, once every
  succeeded host of it has been at target for `health_gate_s` — counted from its answer at the
  earliest, so an observation from before the action does not pass the gate. A gate never met
  waits until the deadline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drover.model.action import SENT_NO_ANSWER, HostOutcome
from drover.model.status import ServiceStatus, TargetStatus, has_drift
from drover.model.strategy import Strategy


class RolloutState(StrEnum):
    RUNNING = "running"  # sending batch after batch
    STOPPED = "stopped"  # more hosts failed than allowed: nothing more is sent
    CANCELLED = "cancelled"  # an operator cancelled it: nothing more is sent
    EXPIRED = "expired"  # its deadline passed with hosts unsent: nothing more is sent
    # Only in Done, when every host was sent:
    SUCCEEDED = "succeeded"  # and every host succeeded
    FAILED = "failed"  # and some failed, no more than allowed
    # Before it starts, for an action that needs four eyes (drover.model.approval):
    PENDING_APPROVAL = "pending-approval"  # held: nothing is sent until it is approved
    REJECTED = "rejected"  # an approver said no: nothing was ever sent
    APPROVAL_EXPIRED = "approval-expired"  # not decided in time: nothing was ever sent


HALTED = frozenset(
    {
        RolloutState.STOPPED,
        RolloutState.CANCELLED,
        RolloutState.EXPIRED,
        RolloutState.REJECTED,
        RolloutState.APPROVAL_EXPIRED,
    }
)
FAILURES = frozenset(
    {HostOutcome.FAILED, HostOutcome.EXPIRED, HostOutcome.INTERRUPTED, HostOutcome.REJECTED}
)


@dataclass(frozen=True)
class HostProgress:
    """One host of a rollout, as recorded. A host not yet sent is `pending` with no `sent_at`."""

    outcome: HostOutcome = HostOutcome.PENDING
    sent_at: datetime | None = None  # when a Dispatch released it
    answered_at: datetime | None = None  # when its final outcome was recorded (else: sent_at)


@dataclass(frozen=True)
class CancelRequest:
    abort_running: bool = False  # False: hosts already sent finish
    requested_by: str = ""  # who asked (for an abort: named in each host's output)


@dataclass(frozen=True)
class Rollout:
    """What `decide` needs of a rollout besides its hosts. `state` is RUNNING at first, then the
    state of the last Halt; `cancel` is set once someone asked for it."""

    plan: Sequence[Sequence[str]]
    strategy: Strategy
    started_at: datetime
    state: RolloutState = RolloutState.RUNNING
    cancel: CancelRequest | None = None

    def __post_init__(self) -> None:
        if any(not batch for batch in self.plan):
            raise ValueError("a plan has no empty batch")
        if len(set(self.hosts)) != len(self.hosts):
            raise ValueError("a plan holds each host once")

    @property
    def hosts(self) -> list[str]:
        return [host for batch in self.plan for host in batch]

    @property
    def deadline(self) -> datetime:
        return self.started_at + timedelta(seconds=self.strategy.deadline_s)

    def host_deadline(self, sent_at: datetime) -> datetime:
        """The deadline of a host's request sent at `sent_at`."""
        if self.strategy.host_timeout_s is None:
            return self.deadline
        return min(sent_at + timedelta(seconds=self.strategy.host_timeout_s), self.deadline)


@dataclass(frozen=True)
class Dispatch:
    batch: int  # index into the plan, from 0
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Expire:
    hosts: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Halt:
    state: RolloutState  # stopped, cancelled or expired
    reason: str
    marks: Mapping[str, HostOutcome]  # skipped or expired if unsent; cancelled if aborted
    abort: tuple[str, ...] = ()  # running hosts to send an abort (each also in marks)


@dataclass(frozen=True)
class Wait:
    until: datetime  # always later than `now`
    why: str


@dataclass(frozen=True)
class Done:
    state: RolloutState
    summary: str  # e.g. "10 hosts: 7 succeeded, 1 failed, 2 skipped"


Step = Dispatch | Expire | Halt | Wait | Done


def decide(
    rollout: Rollout,
    hosts: Mapping[str, HostProgress],
    health: Mapping[str, datetime | None],
    now: datetime,
    grace: timedelta = timedelta(0),
) -> Step:
    """The next step. `hosts`: as recorded (a host of the plan missing here is unsent; others are
    ignored). `health`: for the succeeded hosts of the last batch sent, since when all the
    action's services there have been at their target (see `held_since`); missing or None: not
    at target now. Only read with a health gate."""
    view = _View.of(rollout, hosts, grace)
    if not view.unsent and not view.running:
        return Done(_final_state(rollout.state, view), view.summary())
    if halt := _halt(rollout, view, now):
        return halt
    if overdue := tuple(h for h in view.running if now >= view.expiry(h)):
        return Expire(overdue, SENT_NO_ANSWER)
    if rollout.state in HALTED or not view.unsent:
        return Wait(view.first_expiry(), f"{rollout.state}: {view.waiting_for_running()}")
    return _advance(rollout, view, health, now)


@dataclass(frozen=True)
class _View:
    rollout: Rollout
    hosts: dict[str, HostProgress]  # every host of the plan
    unsent: list[str]  # pending, never released; in plan order
    running: list[str]  # released, no final outcome yet; in plan order
    grace: timedelta

    @classmethod
    def of(cls, rollout: Rollout, given: Mapping[str, HostProgress], grace: timedelta) -> _View:
        hosts = {h: given.get(h, HostProgress()) for h in rollout.hosts}
        unsent, running = [], []
        for host, progress in hosts.items():
            if _unsent(progress):
                unsent.append(host)
            elif not progress.outcome.is_final:
                running.append(host)
        return cls(rollout, hosts, unsent, running, grace)

    def unsent_in(self, batch: Sequence[str]) -> list[str]:
        return [h for h in batch if _unsent(self.hosts[h])]

    @property
    def failures(self) -> int:
        return sum(p.outcome in FAILURES for p in self.hosts.values())

    def expiry(self, host: str) -> datetime:
        sent_at = self.hosts[host].sent_at or self.rollout.started_at
        return self.rollout.host_deadline(sent_at) + self.grace

    def first_expiry(self) -> datetime:
        return min(self.expiry(h) for h in self.running)

    def answered_at(self, host: str) -> datetime:
        p = self.hosts[host]
        return p.answered_at or p.sent_at or self.rollout.started_at

    def waiting_for_running(self) -> str:
        return f"waiting for {_few(self.running)} to answer"

    def summary(self) -> str:
        counts = Counter(p.outcome for p in self.hosts.values())
        parts = [f"{counts[o]} {o}" for o in HostOutcome if counts[o]]
        return f"{len(self.hosts)} hosts: {', '.join(parts)}"


def _unsent(progress: HostProgress) -> bool:
    return progress.sent_at is None and progress.outcome is HostOutcome.PENDING


def _final_state(state: RolloutState, view: _View) -> RolloutState:
    if state in HALTED:
        return state
    if all(p.outcome.is_success for p in view.hosts.values()):
        return RolloutState.SUCCEEDED
    return RolloutState.FAILED


def _halt(rollout: Rollout, view: _View, now: datetime) -> Halt | None:
    """The cancel, the failure threshold or the deadline, first come; or a Halt repeated."""
    if rollout.cancel is not None:
        return _cancel(rollout, view, rollout.cancel)
    if not view.unsent:
        return None
    if rollout.state in HALTED:  # its marks were not all recorded: say them again
        return _halt_unsent(rollout.state, view, f"{rollout.state} before")
    allowed = rollout.strategy.allowed_failures(len(view.hosts))
    if view.failures > allowed:
        why = f"{_count(view.failures)} failed, more than the {allowed} allowed"
        return _halt_unsent(RolloutState.STOPPED, view, why)
    if now >= rollout.deadline:
        why = f"the deadline passed ({rollout.deadline.isoformat()})"
        return _halt_unsent(RolloutState.EXPIRED, view, why)
    return None


def _halt_unsent(state: RolloutState, view: _View, why: str) -> Halt:
    mark = HostOutcome.EXPIRED if state is RolloutState.EXPIRED else HostOutcome.SKIPPED
    reason = f"{why}: {_few(view.unsent)} not yet sent, now {mark}"
    return Halt(state, reason, dict.fromkeys(view.unsent, mark))


def _cancel(rollout: Rollout, view: _View, cancel: CancelRequest) -> Halt | None:
    abort = tuple(view.running) if cancel.abort_running else ()
    marks = dict.fromkeys(view.unsent, HostOutcome.SKIPPED)
    marks |= dict.fromkeys(abort, HostOutcome.CANCELLED)
    if rollout.state is RolloutState.CANCELLED and not marks:
        return None
    running = "aborted" if cancel.abort_running else "left to finish"
    reason = (
        f"cancelled: {_count(len(view.unsent))} not yet sent skipped, "
        f"{len(view.running)} running {running}"
    )
    return Halt(RolloutState.CANCELLED, reason, marks, abort)


def _advance(
    rollout: Rollout, view: _View, health: Mapping[str, datetime | None], now: datetime
) -> Dispatch | Wait:
    """Running, nothing overdue, hosts unsent, before the deadline: the next batch or a wait."""
    index = next(i for i, batch in enumerate(rollout.plan) if view.unsent_in(batch))
    batch = rollout.plan[index]
    todo = tuple(view.unsent_in(batch))
    if index == 0 or len(todo) < len(batch):  # the first batch, or one already begun
        return Dispatch(index, todo)
    name = f"batch {index + 1}/{len(rollout.plan)}"
    if view.running:
        until = min(view.first_expiry(), rollout.deadline)
        return Wait(until, f"{name}: {view.waiting_for_running()}")
    ready, why = _ready_at(rollout, view, rollout.plan[index - 1], health)
    if ready is not None and now >= ready:
        return Dispatch(index, todo)
    until = rollout.deadline if ready is None else min(ready, rollout.deadline)
    return Wait(until, f"{name}: {why}")


def _ready_at(
    rollout: Rollout, view: _View, previous: Sequence[str], health: Mapping[str, datetime | None]
) -> tuple[datetime | None, str]:
    """When the batch after `previous` may start (None: not foreseeable yet), and why then."""
    strategy = rollout.strategy
    ready = max(view.answered_at(h) for h in previous) + timedelta(seconds=strategy.pause_s)
    if strategy.health_gate_s == 0:
        return ready, f"pausing {strategy.pause_s:g} s"
    gate = timedelta(seconds=strategy.health_gate_s)
    off_target = []
    for host in previous:
        if view.hosts[host].outcome.is_success:
            since = health.get(host)
            if since is None:
                off_target.append(host)
            else:
                ready = max(ready, max(since, view.answered_at(host)) + gate)
    if off_target:
        return None, f"waiting for the services of {_few(off_target)} to reach their target"
    return ready, f"pausing {strategy.pause_s:g} s, health gate {strategy.health_gate_s:g} s"


def settled(status: ServiceStatus | None, target: TargetStatus) -> bool:
    """At its target and not on its way there: what a health gate waits for."""
    if status is None or status in (ServiceStatus.STARTING, ServiceStatus.STOPPING):
        return False
    return not has_drift(status, target)


def held_since(
    services: Iterable[tuple[ServiceStatus | None, TargetStatus, datetime | None]],
) -> datetime | None:
    """Since when every one of a host's services (status, target, status since) has been
    settled at its target: the latest `since`. None when one is not, or there are none."""
    latest: datetime | None = None
    for status, target, since in services:
        if since is None or not settled(status, target):
            return None
        latest = since if latest is None else max(latest, since)
    return latest


def _few(hosts: Sequence[str], shown: int = 3) -> str:
    names = ", ".join(hosts[:shown])
    more = f" and {len(hosts) - shown} more" if len(hosts) > shown else ""
    return f"{_count(len(hosts))} ({names}{more})"


def _count(hosts: int) -> str:
    return f"{hosts} host" if hosts == 1 else f"{hosts} hosts"
