from hypothesis import given
from hypothesis import strategies as st

from drover.model.action import ActionState, HostOutcome, action_state
from drover.model.names import host_id_from_hostname, is_host_id
from drover.model.status import ServiceStatus, TargetStatus, has_drift


def test_a_running_service_with_target_running_has_no_drift() -> None:
    assert not has_drift(ServiceStatus.RUNNING, TargetStatus.RUNNING)
    assert not has_drift(ServiceStatus.STARTING, TargetStatus.RUNNING)


def test_a_failed_or_stopped_service_with_target_running_drifts() -> None:
    assert has_drift(ServiceStatus.FAILED, TargetStatus.RUNNING)
    assert has_drift(ServiceStatus.STOPPED, TargetStatus.RUNNING)
    assert has_drift(ServiceStatus.UNKNOWN, TargetStatus.RUNNING)


def test_a_service_nobody_reported_drifts_whatever_its_target() -> None:
    assert has_drift(None, TargetStatus.RUNNING)
    assert has_drift(None, TargetStatus.STOPPED)


def test_a_running_service_with_target_stopped_drifts() -> None:
    assert has_drift(ServiceStatus.RUNNING, TargetStatus.STOPPED)
    assert not has_drift(ServiceStatus.STOPPED, TargetStatus.STOPPED)


def test_an_action_runs_until_every_host_has_a_final_outcome() -> None:
    assert action_state([HostOutcome.SUCCEEDED, HostOutcome.DISPATCHED]) is ActionState.RUNNING
    assert action_state([HostOutcome.SUCCEEDED, HostOutcome.SUCCEEDED]) is ActionState.SUCCEEDED
    assert action_state([HostOutcome.SUCCEEDED, HostOutcome.EXPIRED]) is ActionState.FAILED


@given(st.lists(st.sampled_from(list(HostOutcome)), min_size=1))
def test_an_action_succeeds_only_when_all_its_hosts_succeeded(outcomes: list[HostOutcome]) -> None:
    state = action_state(outcomes)
    assert (state is ActionState.SUCCEEDED) == all(o is HostOutcome.SUCCEEDED for o in outcomes)
    assert (state is ActionState.RUNNING) == any(not o.is_final for o in outcomes)


@given(st.text(min_size=0, max_size=100))
def test_any_hostname_becomes_a_valid_host_id(hostname: str) -> None:
    assert is_host_id(host_id_from_hostname(hostname or "x"))


def test_a_fully_qualified_hostname_becomes_its_short_name() -> None:
    assert host_id_from_hostname("web-01.zrh.example.com") == "web-01"
