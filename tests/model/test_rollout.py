"""A rollout's progress: batches, pauses, the health gate, failures, timeouts, cancel, deadline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from drover.model.action import HostOutcome
from drover.model.rollout import (
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
    settled,
)
from drover.model.status import ServiceStatus, TargetStatus
from drover.model.strategy import Strategy, plan

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTS = ["a1", "a2", "b1", "b2", "c1"]
OK, FAILED = HostOutcome.SUCCEEDED, HostOutcome.FAILED
RUNNING = RolloutState.RUNNING


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rollout(
    state: RolloutState = RUNNING, cancel: CancelRequest | None = None, **strategy: object
) -> Rollout:
    chosen = Strategy.model_validate({"batch_size": 2, **strategy})
    return Rollout(plan(HOSTS, chosen), chosen, T0, state, cancel)


def sent(at_s: float) -> HostProgress:
    return HostProgress(HostOutcome.DISPATCHED, at(at_s))


def answered(outcome: HostOutcome, sent_s: float, answered_s: float) -> HostProgress:
    return HostProgress(outcome, at(sent_s), at(answered_s))


def first_batch_done(outcome: HostOutcome = OK, answered_s: float = 10) -> dict[str, HostProgress]:
    return {"a1": answered(OK, 0, answered_s - 5), "a2": answered(outcome, 0, answered_s)}


def step(
    r: Rollout,
    hosts: Mapping[str, HostProgress],
    now_s: float,
    health: Mapping[str, datetime | None] | None = None,
    grace_s: float = 0,
) -> object:
    return decide(r, hosts, health or {}, at(now_s), timedelta(seconds=grace_s))


# Batches


def test_the_first_batch_goes_at_once() -> None:
    assert step(rollout(), {}, 0) == Dispatch(0, ("a1", "a2"))


def test_all_at_once_sends_every_host_in_one_batch() -> None:
    r = rollout(batch_size=None)
    assert step(r, {}, 0) == Dispatch(0, tuple(HOSTS))


def test_the_next_batch_waits_until_every_host_of_the_previous_one_answered() -> None:
    hosts = {"a1": answered(OK, 0, 5), "a2": sent(0)}
    # No host timeout: the deadline bounds the wait.
    assert step(rollout(), hosts, 7) == Wait(
        at(600), "batch 2/3: waiting for 1 host (a2) to answer"
    )


def test_the_next_batch_goes_once_the_previous_one_answered() -> None:
    assert step(rollout(), first_batch_done(), 10) == Dispatch(1, ("b1", "b2"))


def test_a_batch_begun_but_not_finished_sending_is_sent_at_once() -> None:
    # The orchestrator died in the middle of a Dispatch: the rest go now, pause or not.
    hosts = {**first_batch_done(), "b1": sent(10)}
    assert step(rollout(pause_s=300), hosts, 11) == Dispatch(1, ("b2",))


def test_a_host_sent_but_not_yet_published_is_running_not_sent_again() -> None:
    hosts = {"a1": HostProgress(HostOutcome.PENDING, at(0)), "a2": sent(0)}
    assert step(rollout(), hosts, 1) == Wait(
        at(600), "batch 2/3: waiting for 2 hosts (a1, a2) to answer"
    )


def test_hosts_of_the_plan_not_given_are_unsent_and_others_are_ignored() -> None:
    assert step(rollout(), {"zz": sent(0)}, 0) == Dispatch(0, ("a1", "a2"))


# Pause and health gate


def test_a_pause_counts_from_the_last_answer_of_the_previous_batch() -> None:
    r = rollout(pause_s=30)
    assert step(r, first_batch_done(answered_s=10), 20) == Wait(at(40), "batch 2/3: pausing 30 s")
    assert step(r, first_batch_done(answered_s=10), 40) == Dispatch(1, ("b1", "b2"))


def test_a_health_gate_waits_until_the_services_held_their_target_long_enough() -> None:
    r = rollout(health_gate_s=60)
    health = {"a1": at(20), "a2": at(15)}
    expected = Wait(at(80), "batch 2/3: pausing 0 s, health gate 60 s")
    assert step(r, first_batch_done(answered_s=10), 30, health) == expected
    assert step(r, first_batch_done(answered_s=10), 80, health) == Dispatch(1, ("b1", "b2"))


def test_a_health_gate_counts_from_the_answer_not_from_an_older_observation() -> None:
    # At target since long before the action: the gate still runs from the host's answer.
    r = rollout(health_gate_s=60)
    health = {"a1": at(-3600), "a2": at(-3600)}
    assert step(r, first_batch_done(answered_s=10), 30, health) == Wait(
        at(70), "batch 2/3: pausing 0 s, health gate 60 s"
    )


def test_a_health_gate_waits_for_hosts_off_target_until_the_deadline_at_most() -> None:
    r = rollout(health_gate_s=60)
    assert step(r, first_batch_done(), 30, {"a1": at(20), "a2": None}) == Wait(
        at(600), "batch 2/3: waiting for the services of 1 host (a2) to reach their target"
    )


def test_a_health_gate_ignores_the_failed_hosts_of_a_batch() -> None:
    r = rollout(health_gate_s=60, max_failures=1)
    hosts = first_batch_done(outcome=FAILED)
    assert step(r, hosts, 100, {"a1": at(20)}) == Dispatch(1, ("b1", "b2"))


def test_pause_and_gate_both_hold_the_next_batch() -> None:
    r = rollout(pause_s=100, health_gate_s=10)
    health = {"a1": at(5), "a2": at(10)}
    assert step(r, first_batch_done(answered_s=10), 50, health) == Wait(
        at(110), "batch 2/3: pausing 100 s, health gate 10 s"
    )


# Failures


def test_by_default_the_first_failure_stops_the_rollout_and_skips_the_unsent() -> None:
    hosts = {"a1": answered(FAILED, 0, 3), "a2": sent(0)}
    assert step(rollout(), hosts, 4) == Halt(
        RolloutState.STOPPED,
        "1 host failed, more than the 0 allowed: 3 hosts (b1, b2, c1) not yet sent, now skipped",
        {"b1": HostOutcome.SKIPPED, "b2": HostOutcome.SKIPPED, "c1": HostOutcome.SKIPPED},
    )


def test_a_stopped_rollout_waits_for_its_running_hosts_then_is_done() -> None:
    skipped = dict.fromkeys(["b1", "b2", "c1"], HostProgress(HostOutcome.SKIPPED))
    hosts = {"a1": answered(FAILED, 0, 3), "a2": sent(0), **skipped}
    r = rollout(RolloutState.STOPPED, host_timeout_s=60)
    assert step(r, hosts, 4) == Wait(at(60), "stopped: waiting for 1 host (a2) to answer")
    hosts["a2"] = answered(OK, 0, 5)
    assert step(r, hosts, 5) == Done(
        RolloutState.STOPPED, "5 hosts: 1 succeeded, 1 failed, 3 skipped"
    )


def test_failures_within_the_threshold_go_on() -> None:
    r = rollout(max_failures=1)
    assert step(r, first_batch_done(outcome=FAILED), 10) == Dispatch(1, ("b1", "b2"))


def test_a_percentage_of_failures_is_of_all_hosts() -> None:
    # 40 % of 5 hosts: two may fail, the third stops it.
    r = rollout(max_failures_percent=40)
    hosts = {"a1": answered(FAILED, 0, 3), "a2": answered(FAILED, 0, 3)}
    assert step(r, hosts, 4) == Dispatch(1, ("b1", "b2"))
    hosts |= {"b1": answered(HostOutcome.REJECTED, 4, 6), "b2": sent(4)}
    halt = step(r, hosts, 6)
    assert isinstance(halt, Halt)
    assert (halt.state, halt.marks) == (RolloutState.STOPPED, {"c1": HostOutcome.SKIPPED})


@pytest.mark.parametrize(
    "outcome",
    [HostOutcome.FAILED, HostOutcome.EXPIRED, HostOutcome.INTERRUPTED, HostOutcome.REJECTED],
)
def test_each_kind_of_failure_counts(outcome: HostOutcome) -> None:
    halt = step(rollout(), first_batch_done(outcome=outcome), 10)
    assert isinstance(halt, Halt)
    assert halt.state is RolloutState.STOPPED


def test_failures_in_the_last_batch_end_it_failed_not_stopped() -> None:
    hosts = {h: answered(OK, 0, 1) for h in HOSTS} | {"c1": answered(FAILED, 2, 3)}
    assert step(rollout(), hosts, 4) == Done(RolloutState.FAILED, "5 hosts: 4 succeeded, 1 failed")


def test_a_rollout_where_every_host_succeeded_succeeded() -> None:
    hosts = {h: answered(OK, 0, 1) for h in HOSTS}
    assert step(rollout(), hosts, 4) == Done(RolloutState.SUCCEEDED, "5 hosts: 5 succeeded")


# Timeouts and the deadline


def test_a_host_that_does_not_answer_in_its_timeout_and_grace_is_expired() -> None:
    r = rollout(host_timeout_s=30)
    hosts = {"a1": answered(OK, 0, 3), "a2": sent(0)}
    assert step(r, hosts, 34, grace_s=5) == Wait(
        at(35), "batch 2/3: waiting for 1 host (a2) to answer"
    )
    assert step(r, hosts, 35, grace_s=5) == Expire(("a2",), "sent, but no answer by its deadline")
    hosts["a2"] = HostProgress(HostOutcome.EXPIRED, at(0), at(35))
    halt = step(r, hosts, 35, grace_s=5)
    assert isinstance(halt, Halt)
    assert halt.state is RolloutState.STOPPED  # an expired host is a failed one


def test_a_host_deadline_is_never_past_the_rollouts() -> None:
    r = rollout(host_timeout_s=120, deadline_s=100)
    assert r.host_deadline(at(10)) == at(100)
    assert r.host_deadline(at(-50)) == at(70)
    assert rollout().host_deadline(at(10)) == at(600)


def test_past_the_deadline_nothing_more_is_sent_and_the_unsent_expire() -> None:
    r = rollout(pause_s=1000)
    halt = step(r, first_batch_done(), 600)
    assert halt == Halt(
        RolloutState.EXPIRED,
        f"the deadline passed ({at(600).isoformat()}): 3 hosts (b1, b2, c1) not yet sent, "
        "now expired",
        dict.fromkeys(["b1", "b2", "c1"], HostOutcome.EXPIRED),
    )


def test_a_wait_never_runs_past_the_deadline_while_hosts_are_unsent() -> None:
    assert step(rollout(pause_s=1000), first_batch_done(), 100) == Wait(
        at(600), "batch 2/3: pausing 1000 s"
    )


def test_a_deadline_with_every_host_sent_leaves_them_their_grace() -> None:
    hosts = {h: answered(OK, 0, 1) for h in HOSTS} | {"c1": sent(590)}
    assert step(rollout(), hosts, 610, grace_s=60) == Wait(
        at(660), "running: waiting for 1 host (c1) to answer"
    )
    hosts["c1"] = answered(OK, 590, 620)
    assert step(rollout(), hosts, 620, grace_s=60) == Done(
        RolloutState.SUCCEEDED, "5 hosts: 5 succeeded"
    )


# Cancel


def test_a_cancel_skips_the_unsent_and_lets_running_hosts_finish() -> None:
    r = rollout(cancel=CancelRequest())
    hosts = {"a1": answered(OK, 0, 1), "a2": sent(0)}
    assert step(r, hosts, 2) == Halt(
        RolloutState.CANCELLED,
        "cancelled: 3 hosts not yet sent skipped, 1 running left to finish",
        dict.fromkeys(["b1", "b2", "c1"], HostOutcome.SKIPPED),
    )
    after = rollout(RolloutState.CANCELLED, CancelRequest())
    hosts |= dict.fromkeys(["b1", "b2", "c1"], HostProgress(HostOutcome.SKIPPED))
    assert step(after, hosts, 2) == Wait(at(600), "cancelled: waiting for 1 host (a2) to answer")
    hosts["a2"] = answered(OK, 0, 3)
    assert step(after, hosts, 3) == Done(RolloutState.CANCELLED, "5 hosts: 2 succeeded, 3 skipped")


def test_a_cancel_that_aborts_gives_up_on_running_hosts_at_once() -> None:
    r = rollout(cancel=CancelRequest(abort_running=True))
    hosts = {"a1": answered(OK, 0, 1), "a2": sent(0)}
    assert step(r, hosts, 2) == Halt(
        RolloutState.CANCELLED,
        "cancelled: 3 hosts not yet sent skipped, 1 running aborted",
        dict.fromkeys(["b1", "b2", "c1"], HostOutcome.SKIPPED) | {"a2": HostOutcome.CANCELLED},
        abort=("a2",),
    )


def test_a_cancel_before_anything_was_sent_skips_every_host() -> None:
    halt = step(rollout(cancel=CancelRequest()), {}, 0)
    assert isinstance(halt, Halt)
    assert halt.marks == dict.fromkeys(HOSTS, HostOutcome.SKIPPED)


def test_a_cancel_after_every_host_answered_changes_nothing() -> None:
    hosts = {h: answered(OK, 0, 1) for h in HOSTS}
    r = rollout(cancel=CancelRequest(abort_running=True))
    assert step(r, hosts, 2) == Done(RolloutState.SUCCEEDED, "5 hosts: 5 succeeded")


def test_a_cancel_with_abort_reaches_the_hosts_still_running_after_a_stop() -> None:
    skipped = dict.fromkeys(["b1", "b2", "c1"], HostProgress(HostOutcome.SKIPPED))
    hosts = {"a1": answered(FAILED, 0, 1), "a2": sent(0), **skipped}
    r = rollout(RolloutState.STOPPED, CancelRequest(abort_running=True))
    assert step(r, hosts, 2) == Halt(
        RolloutState.CANCELLED,
        "cancelled: 0 hosts not yet sent skipped, 1 running aborted",
        {"a2": HostOutcome.CANCELLED},
        abort=("a2",),
    )


def test_a_halt_whose_marks_were_not_recorded_is_given_again() -> None:
    hosts = {"a1": answered(FAILED, 0, 1), "a2": answered(OK, 0, 1)}
    halt = step(rollout(), hosts, 2)
    assert isinstance(halt, Halt)
    again = step(rollout(RolloutState.STOPPED), hosts, 3)
    assert again == Halt(
        RolloutState.STOPPED,
        "stopped before: 3 hosts (b1, b2, c1) not yet sent, now skipped",
        halt.marks,
    )


def test_the_same_question_gets_the_same_answer() -> None:
    hosts = first_batch_done()
    assert step(rollout(pause_s=5), hosts, 12) == step(rollout(pause_s=5), hosts, 12)


# The rollout itself


def test_a_plan_with_a_host_twice_or_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="each host once"):
        Rollout([["a"], ["a"]], Strategy(), T0)
    with pytest.raises(ValueError, match="no empty batch"):
        Rollout([["a"], []], Strategy(), T0)


# Health


def test_a_service_is_settled_only_at_its_target_and_not_on_its_way() -> None:
    assert settled(ServiceStatus.RUNNING, TargetStatus.RUNNING)
    assert not settled(ServiceStatus.STARTING, TargetStatus.RUNNING)
    assert not settled(None, TargetStatus.RUNNING)
    assert settled(ServiceStatus.STOPPED, TargetStatus.STOPPED)
    assert settled(ServiceStatus.FAILED, TargetStatus.STOPPED)
    assert not settled(ServiceStatus.STOPPING, TargetStatus.STOPPED)
    assert not settled(ServiceStatus.RUNNING, TargetStatus.STOPPED)


def test_a_host_is_at_target_since_its_last_service_got_there() -> None:
    run, stop = TargetStatus.RUNNING, TargetStatus.STOPPED
    services = [(ServiceStatus.RUNNING, run, at(5)), (ServiceStatus.STOPPED, stop, at(9))]
    assert held_since(services) == at(9)
    assert held_since([*services, (ServiceStatus.FAILED, run, at(1))]) is None
    assert held_since([(ServiceStatus.RUNNING, run, None)]) is None
    assert held_since([]) is None
