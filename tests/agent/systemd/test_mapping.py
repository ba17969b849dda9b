"""systemd unit state → drover status, from properties recorded from a real systemd.

The files in recorded/ were written by `python -m tests.agent.systemd.record`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.agent.providers.systemd.mapping import (
    SERVICE_INTERFACE,
    UNIT_INTERFACE,
    Mapped,
    UnitSnapshot,
    map_status,
)
from drover.model.status import ServiceStatus

RECORDED = Path(__file__).parent / "recorded"

EXPECTED = {
    "running": Mapped(ServiceStatus.RUNNING, ""),
    "inactive": Mapped(ServiceStatus.STOPPED, ""),
    "failed": Mapped(ServiceStatus.FAILED, "result: exit-code"),
    "oneshot_exited": Mapped(ServiceStatus.RUNNING, "active (exited)"),
    "activating": Mapped(ServiceStatus.STARTING, "activating (start)"),
    "auto_restart": Mapped(
        ServiceStatus.STARTING,
        "restarting after failure (result: exit-code); restarted 1× by systemd",
    ),
    "deactivating": Mapped(ServiceStatus.STOPPING, "deactivating (stop)"),
    "reloading": Mapped(ServiceStatus.RUNNING, "reloading"),
    "masked": Mapped(ServiceStatus.STOPPED, "unit masked"),
    "not_found": Mapped(ServiceStatus.UNKNOWN, "unit not found"),
}


def recorded(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{case}.json").read_text())
    return data


def snapshot_of(case: str) -> UnitSnapshot:
    data = recorded(case)
    unit = data[UNIT_INTERFACE]
    return UnitSnapshot.from_properties(unit["Id"], unit, data[SERVICE_INTERFACE])


def test_every_recording_has_an_expectation() -> None:
    assert sorted(p.stem for p in RECORDED.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_recorded_unit_states_map_to_drover_statuses(case: str) -> None:
    assert snapshot_of(case).describe() == EXPECTED[case]


def test_a_snapshot_holds_what_the_provider_reports() -> None:
    assert snapshot_of("running") == UnitSnapshot(
        name="rec-running.service",
        load_state="loaded",
        active_state="active",
        sub_state="running",
        unit_file_state="static",
        state_change_usec=recorded("running")[UNIT_INTERFACE]["StateChangeTimestamp"],
        result="success",
        main_pid=recorded("running")[SERVICE_INTERFACE]["MainPID"],
        n_restarts=0,
        memory_current=recorded("running")[SERVICE_INTERFACE]["MemoryCurrent"],
    )
    assert snapshot_of("failed").memory_current is None  # systemd's "unset" (2**64 - 1)
    assert snapshot_of("masked").since is None  # StateChangeTimestamp 0: never changed


def test_since_is_the_state_change_timestamp() -> None:
    snapshot = UnitSnapshot("x.service", state_change_usec=1_700_000_000_250_000)
    assert snapshot.since == datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC)


def test_a_signal_merges_into_the_snapshot_and_foreign_or_ill_typed_values_are_ignored() -> None:
    before = snapshot_of("running")
    after = before.merged(UNIT_INTERFACE, {"ActiveState": "deactivating", "SubState": "stop"})
    assert (after.active_state, after.sub_state, after.main_pid) == (
        "deactivating",
        "stop",
        before.main_pid,
    )
    assert before.merged(SERVICE_INTERFACE, {"MainPID": 0}).main_pid == 0
    assert before.merged("org.freedesktop.systemd1.Socket", {"ActiveState": "failed"}) == before
    assert before.merged(UNIT_INTERFACE, {"ActiveState": 3, "Other": "x"}) == before


@pytest.mark.parametrize(
    ("active", "sub", "result", "expected"),
    [
        ("inactive", "dead", "timeout", Mapped(ServiceStatus.STOPPED, "result: timeout")),
        ("failed", "failed", None, Mapped(ServiceStatus.FAILED, "result: unknown")),
        ("maintenance", "x", None, Mapped(ServiceStatus.UNKNOWN, "systemd state maintenance/x")),
        ("refreshing", "y", None, Mapped(ServiceStatus.UNKNOWN, "systemd state refreshing/y")),
    ],
)
def test_states_not_recorded(active: str, sub: str, result: str | None, expected: Mapped) -> None:
    assert map_status(active, sub, result=result) == expected


def test_a_unit_file_with_errors_says_so() -> None:
    snapshot = UnitSnapshot("x.service", load_state="bad-setting", active_state="inactive")
    assert snapshot.describe() == Mapped(
        ServiceStatus.STOPPED, "unit file cannot be loaded (bad-setting)"
    )


ACTIVE_STATES = st.sampled_from(
    ["active", "reloading", "inactive", "failed", "activating", "deactivating", "maintenance"]
) | st.text(max_size=20)


@given(
    active=ACTIVE_STATES,
    sub=st.text(max_size=20),
    unit_file_state=st.none() | st.text(max_size=20),
    result=st.none() | st.text(max_size=20),
    n_restarts=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_combination_maps_to_some_status(
    active: str, sub: str, unit_file_state: str | None, result: str | None, n_restarts: int
) -> None:
    status, message = map_status(active, sub, unit_file_state, result, n_restarts)
    assert status in set(ServiceStatus)
    assert isinstance(message, str)
    if active == "failed":
        assert status is ServiceStatus.FAILED


PROPERTY_NAMES = st.sampled_from(
    [
        *("LoadState", "ActiveState", "SubState", "UnitFileState", "StateChangeTimestamp"),
        *("Result", "MainPID", "NRestarts", "MemoryCurrent"),
    ]
) | st.text(max_size=25)
VALUES = st.integers(min_value=-(2**64), max_value=2**64) | st.text(max_size=10)


@given(
    unit=st.dictionaries(PROPERTY_NAMES, VALUES),
    service=st.dictionaries(PROPERTY_NAMES, VALUES),
)
def test_any_property_dict_gives_a_snapshot_that_describes_itself(
    unit: dict[str, Any], service: dict[str, Any]
) -> None:
    snapshot = UnitSnapshot.from_properties("x.service", unit, service)
    assert snapshot.describe().status in set(ServiceStatus)
    assert snapshot.since is None or snapshot.since.tzinfo is UTC
