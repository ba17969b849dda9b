"""A rollout driven to its end against simulated hosts, as the orchestrator would drive it.

Every host answers after its own delay with its own outcome (or never), its services settle
some time after it answered (or never), and an operator may cancel at some moment. The
simulation applies each step, checks the rules a step must keep, and moves time on to the next
thing that happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drover.model.action import HostOutcome
from drover.model.rollout import (
    FAILURES,
    HALTED,
    CancelRequest,
    Dispatch,
    Done,
    Expire,
    Halt,
    HostProgress,
    Rollout,
    RolloutState,
    Step,
    Wait,
    decide,
)
from drover.model.strategy import Strategy, plan

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Host:
    delay_s: int | None  # None: never answers
    outcome: HostOutcome
    settles_s: int | None  # from its answer (< 0: at target before); None: never at target


@dataclass(frozen=True)
class Case:
    hosts: dict[str, Host]
    strategy: Strategy
    cancel_at_s: int | None
    abort_running: bool
    grace_s: int


@dataclass
class Simulation:
    case: Case
    now: datetime = T0
    state: RolloutState = RolloutState.RUNNING
    cancel: CancelRequest | None = None
    progress: dict[str, HostProgress] = field(default_factory=dict)
    dispatched: list[tuple[int, str]] = field(default_factory=list)
    aborted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.plan = plan(self.case.hosts, self.case.strategy)
        self.grace = timedelta(seconds=self.case.grace_s)

    @property
    def rollout(self) -> Rollout:
        return Rollout(self.plan, self.case.strategy, T0, self.state, self.cancel)

    def run(self) -> Done:
        for _ in range(20 * len(self.case.hosts) + 50):
            self.happen()
            step = decide(self.rollout, self.progress, self.health(), self.now, self.grace)
            self.check(step)
            if isinstance(step, Done):
                return step
            self.apply(step)
        raise AssertionError("the rollout did not end")

    # The world

    def answer_at(self, host: str) -> datetime | None:
        sent = self.progress.get(host, HostProgress()).sent_at
        delay = self.case.hosts[host].delay_s
        return None if sent is None or delay is None else sent + timedelta(seconds=delay)

    def settled_at(self, host: str) -> datetime | None:
        p, settles = self.progress.get(host), self.case.hosts[host].settles_s
        if p is None or p.answered_at is None or settles is None or not p.outcome.is_success:
            return None
        return p.answered_at + timedelta(seconds=settles)

    def health(self) -> dict[str, datetime | None]:
        since = {h: self.settled_at(h) for h in self.progress}
        return {h: s if s is not None and s <= self.now else None for h, s in since.items()}

    def happen(self) -> None:
        for host, p in list(self.progress.items()):
            due = self.answer_at(host)
            if not p.outcome.is_final and due is not None and due <= self.now:
                outcome = self.case.hosts[host].outcome
                self.progress[host] = HostProgress(outcome, p.sent_at, due)
        if self.case.cancel_at_s is not None and self.now >= self.at(self.case.cancel_at_s):
            self.cancel = CancelRequest(self.case.abort_running)

    def next_event(self) -> datetime | None:
        times = [self.answer_at(h) for h in self.progress] + [
            self.settled_at(h) for h in self.progress
        ]
        if self.case.cancel_at_s is not None:
            times.append(self.at(self.case.cancel_at_s))
        later = [t for t in times if t is not None and t > self.now]
        return min(later, default=None)

    @staticmethod
    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    # Applying a step

    def apply(self, step: Step) -> None:
        if isinstance(step, Dispatch):
            for host in step.hosts:
                self.progress[host] = HostProgress(HostOutcome.DISPATCHED, self.now)
                self.dispatched.append((step.batch, host))
        elif isinstance(step, Expire):
            for host in step.hosts:
                self.record(host, HostOutcome.EXPIRED)
        elif isinstance(step, Halt):
            self.state = step.state
            for host, outcome in step.marks.items():
                self.record(host, outcome)
            self.aborted |= set(step.abort)
        elif isinstance(step, Wait):
            event = self.next_event()
            self.now = step.until if event is None else min(step.until, event)

    def record(self, host: str, outcome: HostOutcome) -> None:
        sent_at = self.progress.get(host, HostProgress()).sent_at
        self.progress[host] = HostProgress(outcome, sent_at, self.now)

    # The rules

    def check(self, step: Step) -> None:
        if isinstance(step, Dispatch):
            self.check_dispatch(step)
        elif isinstance(step, Expire):
            assert step.hosts
            for host in step.hosts:
                p = self.progress[host]
                assert not p.outcome.is_final and p.sent_at is not None
                assert self.now >= self.rollout.host_deadline(p.sent_at) + self.grace
        elif isinstance(step, Halt):
            self.check_halt(step)
        elif isinstance(step, Wait):
            assert step.until > self.now
        else:
            self.check_done(step)

    def check_dispatch(self, step: Dispatch) -> None:
        # Only while running, before the deadline, within the failures allowed, uncancelled.
        assert self.state is RolloutState.RUNNING and self.cancel is None
        assert self.now < self.rollout.deadline
        assert self.failures() <= self.case.strategy.allowed_failures(len(self.case.hosts))
        # Each host once, in its batch, batches in order.
        assert step.hosts and set(step.hosts) <= set(self.plan[step.batch])
        assert not {h for _, h in self.dispatched} & set(step.hosts)
        assert all(step.batch >= batch for batch, _ in self.dispatched)
        if step.batch > 0 and all(b < step.batch for b, _ in self.dispatched):
            self.check_gate(self.plan[step.batch - 1])

    def check_gate(self, previous: list[str]) -> None:
        strategy = self.case.strategy
        answers = [self.progress[h].answered_at for h in previous]
        assert all(a is not None and a <= self.now for a in answers)
        last = max(a for a in answers if a is not None)
        assert self.now >= last + timedelta(seconds=strategy.pause_s)
        if strategy.health_gate_s:
            gate = timedelta(seconds=strategy.health_gate_s)
            for host in previous:
                p, since = self.progress[host], self.health().get(host)
                if p.outcome.is_success:
                    assert since is not None and p.answered_at is not None
                    assert self.now >= max(since, p.answered_at) + gate

    def check_halt(self, step: Halt) -> None:
        assert step.state in HALTED
        for host, outcome in step.marks.items():
            p = self.progress.get(host, HostProgress())
            assert not p.outcome.is_final
            if outcome is HostOutcome.CANCELLED:
                assert p.sent_at is not None and host in step.abort
            else:
                assert p.sent_at is None
                assert outcome in (HostOutcome.SKIPPED, HostOutcome.EXPIRED)

    def check_done(self, step: Done) -> None:
        outcomes = [self.progress[h].outcome for h in self.case.hosts]
        assert all(o.is_final for o in outcomes)
        if self.state in HALTED:
            assert step.state is self.state
        elif all(o.is_success for o in outcomes):
            assert step.state is RolloutState.SUCCEEDED
        else:
            assert step.state is RolloutState.FAILED
        # Nobody was sent twice; whoever was sent was in the plan.
        sent = [h for _, h in self.dispatched]
        assert len(sent) == len(set(sent))
        unsent = set(self.case.hosts) - set(sent)
        assert all(
            self.progress[h].outcome in (HostOutcome.SKIPPED, HostOutcome.EXPIRED) for h in unsent
        )

    def failures(self) -> int:
        return sum(p.outcome in FAILURES for p in self.progress.values())


host_names = st.from_regex(r"h[0-9]{1,3}", fullmatch=True)
host_behaviour = st.builds(
    Host,
    delay_s=st.none() | st.integers(0, 400),
    outcome=st.sampled_from(
        [HostOutcome.SUCCEEDED] * 4
        + [HostOutcome.FAILED, HostOutcome.INTERRUPTED, HostOutcome.REJECTED]
    ),
    settles_s=st.none() | st.integers(-300, 120),
)
strategies = st.builds(
    Strategy,
    batch_size=st.none() | st.integers(1, 8),
    pause_s=st.integers(0, 100).map(float),
    health_gate_s=st.sampled_from([0.0, 0.0, 30.0, 90.0]),
    max_failures=st.none() | st.integers(0, 5),
    host_timeout_s=st.none() | st.integers(1, 300).map(float),
    deadline_s=st.integers(1, 2000).map(float),
)
cases = st.builds(
    Case,
    hosts=st.dictionaries(host_names, host_behaviour, min_size=1, max_size=25),
    strategy=strategies,
    cancel_at_s=st.none() | st.integers(0, 2000),
    abort_running=st.booleans(),
    grace_s=st.sampled_from([0, 0, 30, 300]),
)


@settings(max_examples=300, deadline=None)
@given(cases)
def test_a_rollout_always_ends_keeping_every_rule_on_the_way(case: Case) -> None:
    simulation = Simulation(case)
    done = simulation.run()
    if case.cancel_at_s is None:
        assert done.state is not RolloutState.CANCELLED
    if case.abort_running is False or case.cancel_at_s is None:
        assert not simulation.aborted


@settings(max_examples=100, deadline=None)
@given(st.sets(host_names, min_size=1, max_size=25), strategies, st.sampled_from([0, 30]))
def test_with_every_host_answering_in_time_every_host_runs_batch_after_batch(
    names: set[str], strategy: Strategy, grace_s: int
) -> None:
    quick = dict.fromkeys(names, Host(1, HostOutcome.SUCCEEDED, 0))
    roomy = strategy.model_copy(update={"deadline_s": 7 * 24 * 3600.0})
    simulation = Simulation(Case(quick, roomy, None, False, grace_s))
    assert simulation.run().state is RolloutState.SUCCEEDED
    assert simulation.dispatched == [
        (index, host) for index, batch in enumerate(simulation.plan) for host in batch
    ]
