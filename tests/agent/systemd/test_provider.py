"""SystemdProvider against a real systemd booted in a namespace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from drover.agent.errors import UnknownService
from drover.agent.providers.base import OperationFailed
from drover.agent.providers.systemd.errors import SystemdError
from drover.agent.providers.systemd.provider import SystemdProvider
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import Policy, ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from tests.agent.systemd.conftest import Units, connected, spec, write_units
from tests.conftest import eventually
from tests.systemd_namespace import SystemdNamespace

pytestmark = pytest.mark.systemd


def main_pid(systemd: SystemdNamespace, unit: str) -> int:
    """What systemd itself says, read without drover."""
    return int(systemd.systemctl("show", "--property=MainPID", "--value", unit).stdout)


def active_state(systemd: SystemdNamespace, unit: str) -> str:
    return systemd.systemctl("is-active", unit, check=False).stdout.strip()


def only(provider: SystemdProvider) -> ServiceState:
    [state] = provider.states()
    return state


async def test_a_running_units_real_state_is_read_and_mapped(
    systemd: SystemdNamespace, units: Units
) -> None:
    await systemd.systemctl_async("start", units.sleeper)
    pid = main_pid(systemd, units.sleeper)
    async with connected(systemd) as (provider, seen):
        await provider.apply([spec(units.sleeper)])
        state = only(provider)
        assert state.model_dump(exclude={"since"}) == {
            "v": 1,
            "host": "h1",
            "application": "shop",
            "service": "web",
            "provider": "systemd",
            "status": ServiceStatus.RUNNING,
            "pid": pid,
            "exit_code": None,
            "restarts": 0,
            "message": "",
            "convergence": None,  # judged later, by the reconciler
        }
        # since is systemd's StateChangeTimestamp: when the unit started, not when drover looked
        assert datetime.now(UTC) - timedelta(seconds=30) < state.since <= datetime.now(UTC)
        assert seen[-1] == state
        assert main_pid(systemd, units.sleeper) == pid  # reading it started nothing anew


async def test_a_oneshot_that_remains_after_exit_is_running(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.oneshot)])
        state = only(provider)
        assert (state.status, state.pid, state.message) == (
            ServiceStatus.RUNNING,
            None,
            "active (exited)",
        )


async def test_a_change_made_outside_arrives_by_signal_without_any_read(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, seen):
        await provider.apply([spec(units.sleeper)])
        assert only(provider).status is ServiceStatus.RUNNING
        calls_before = provider.manager.calls.copy()

        await systemd.systemctl_async("stop", units.sleeper)
        await eventually(lambda: seen[-1].status is ServiceStatus.STOPPED)
        await asyncio.sleep(0.5)  # long enough that any periodic read would have shown up

        assert provider.manager.calls == calls_before  # not one D-Bus call: only signals
        assert (only(provider).status, only(provider).pid) == (ServiceStatus.STOPPED, None)
        assert ServiceStatus.STOPPING in [s.status for s in seen]  # each step was reported


async def test_start_restart_and_stop_through_act(systemd: SystemdNamespace, units: Units) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.sleeper, TargetStatus.STOPPED)])
        assert only(provider).status is ServiceStatus.STOPPED

        line = await provider.act("shop", "web", ActionKind.START)
        first = main_pid(systemd, units.sleeper)
        assert line == f"started {units.sleeper} (pid {first})"
        assert (only(provider).status, only(provider).pid) == (ServiceStatus.RUNNING, first)

        line = await provider.act("shop", "web", ActionKind.RESTART)
        second = main_pid(systemd, units.sleeper)
        assert second not in (0, first)
        assert line == f"restarted {units.sleeper} (pid {first} → {second})"
        assert (only(provider).status, only(provider).pid) == (ServiceStatus.RUNNING, second)

        line = await provider.act("shop", "web", ActionKind.STOP)
        assert line == f"stopped {units.sleeper} (was pid {second})"
        assert (only(provider).status, only(provider).pid) == (ServiceStatus.STOPPED, None)
        assert active_state(systemd, units.sleeper) == "inactive"


async def test_a_unit_that_fails_to_start_raises_with_the_job_result_and_shows_failed(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.failing, TargetStatus.STOPPED)])

        with pytest.raises(OperationFailed) as failed:
            await provider.act("shop", "web", ActionKind.START)

        assert (failed.value.application, failed.value.service) == ("shop", "web")
        assert failed.value.reason == (
            f"start job for {units.failing} ended 'failed' (failed, result: exit-code)"
        )
        state = only(provider)
        assert (state.status, state.message) == (ServiceStatus.FAILED, "result: exit-code")


async def test_apply_starts_an_inactive_unit_then_stops_it(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.sleeper, TargetStatus.RUNNING)])
        assert active_state(systemd, units.sleeper) == "active"
        assert only(provider).pid == main_pid(systemd, units.sleeper)

        await provider.apply([spec(units.sleeper, TargetStatus.STOPPED)])
        assert active_state(systemd, units.sleeper) == "inactive"
        assert only(provider).status is ServiceStatus.STOPPED


async def test_a_unit_that_does_not_exist_is_unknown(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, seen):
        await provider.apply([spec(units.missing)])  # nothing to start: no error either
        state = only(provider)
        assert (state.status, state.message) == (ServiceStatus.UNKNOWN, "unit not found")
        assert seen == [state]

        with pytest.raises(OperationFailed, match="NoSuchUnit"):
            await provider.act("shop", "web", ActionKind.START)


async def test_act_on_a_service_it_does_not_hold_raises_unknown_service(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.sleeper)])
        with pytest.raises(UnknownService):
            await provider.act("shop", "api", ActionKind.RESTART)


async def test_close_leaves_units_running(systemd: SystemdNamespace, units: Units) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.sleeper)])
        pid = main_pid(systemd, units.sleeper)
    assert not provider.manager.connected
    assert (active_state(systemd, units.sleeper), main_pid(systemd, units.sleeper)) == (
        "active",
        pid,
    )


async def test_a_service_no_longer_listed_is_forgotten_but_its_unit_left_alone(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, seen):
        await provider.apply([spec(units.sleeper), spec(units.oneshot, service="setup")])
        await provider.apply([spec(units.oneshot, service="setup")])

        assert [s.service for s in provider.states()] == ["setup"]
        assert active_state(systemd, units.sleeper) == "active"
        reported = len(seen)
        await systemd.systemctl_async("stop", units.sleeper)
        await asyncio.sleep(0.3)
        assert len(seen) == reported  # no longer watched


async def test_a_service_moved_to_another_unit_follows_it(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(units.sleeper)])
        await provider.apply([spec(units.oneshot)])
        assert only(provider).message == "active (exited)"
        assert active_state(systemd, units.sleeper) == "active"  # the old unit is not stopped


async def test_connect_raises_systemd_error_when_systemd_is_not_there() -> None:
    async with asyncio.TaskGroup() as tg:
        provider = SystemdProvider("h1", SystemClock(), tg, "unix:path=/nonexistent/bus")
        with pytest.raises(SystemdError, match="cannot connect"):
            await provider.connect()


async def test_losing_systemd_marks_states_unknown_and_apply_reconnects_without_raising(
    own_systemd: SystemdNamespace,
) -> None:
    units = write_units(own_systemd)
    wanted = [spec(units.sleeper)]
    async with connected(own_systemd) as (provider, _):
        await provider.apply(wanted)
        pid = only(provider).pid

        # the system bus goes away under the provider (systemd itself lives on)
        await own_systemd.systemctl_async("restart", "dbus.service")
        await eventually(lambda: only(provider).status is ServiceStatus.UNKNOWN)
        assert only(provider).message == "lost the connection to systemd"

        async def back() -> bool:
            await provider.apply(wanted)  # reconnects; never raises
            return only(provider).status is ServiceStatus.RUNNING

        await eventually(back, timeout=20, interval=0.2)
        assert only(provider).pid == pid  # the unit itself was never touched

        # now systemd itself goes
        own_systemd.stop()
        await eventually(lambda: only(provider).status is ServiceStatus.UNKNOWN)
        await provider.apply(wanted)
        assert only(provider).message.startswith("systemd not reachable")
        with pytest.raises(OperationFailed, match="systemd not reachable"):
            await provider.act("shop", "web", ActionKind.RESTART)


async def test_a_unit_removed_during_its_start_job_fails_with_the_reason_and_the_rest_goes_on(
    systemd: SystemdNamespace, units: Units
) -> None:
    async with connected(systemd) as (provider, _):
        await provider.apply(
            [spec(units.slow, TargetStatus.STOPPED), spec(units.sleeper, service="api")]
        )
        starting = asyncio.create_task(provider.act("shop", "web", ActionKind.START))
        await eventually(lambda: active_state(systemd, units.slow) == "activating")
        (systemd.root / "run/systemd/system" / units.slow).unlink()
        await systemd.systemctl_async("stop", units.slow)
        await systemd.systemctl_async("daemon-reload")

        with pytest.raises(OperationFailed) as failed:
            await asyncio.wait_for(starting, 20)
        assert failed.value.reason.startswith(f"start job for {units.slow} ended 'canceled'")
        # the provider is not broken by it: the next action on another unit works
        line = await provider.act("shop", "api", ActionKind.RESTART)
        assert line.startswith(f"restarted {units.sleeper}")


@pytest.mark.parametrize(
    ("unit_text", "error"),
    [
        (None, "org.freedesktop.systemd1.UnitMasked"),
        (
            "[Unit]\nRefuseManualStart=yes\n[Service]\nExecStart=/bin/sleep infinity\n",
            "may be requested by dependency only (it is configured to refuse manual start",
        ),
    ],
)
async def test_a_refusal_from_systemd_fails_the_action_with_systemds_reason(
    systemd: SystemdNamespace, units: Units, unit_text: str | None, error: str
) -> None:
    name = units.missing  # a name of this test's own
    if unit_text is None:
        (systemd.root / "run/systemd/system" / name).symlink_to("/dev/null")  # masked
        systemd.systemctl("daemon-reload")
    else:
        systemd.write_units({name: unit_text})
    async with connected(systemd) as (provider, _):
        await provider.apply([spec(name, TargetStatus.STOPPED)])
        with pytest.raises(OperationFailed) as failed:
            await provider.act("shop", "web", ActionKind.START)
        assert error in failed.value.reason
        assert active_state(systemd, name) != "active"


async def test_an_observed_unit_is_left_as_found_and_moved_only_when_its_target_changes(
    systemd: SystemdNamespace, units: Units
) -> None:
    def observed(target: TargetStatus) -> list[DesiredService]:
        return [spec(units.sleeper, target).model_copy(update={"policy": Policy.OBSERVE})]

    async with connected(systemd) as (provider, _):
        await provider.apply(observed(TargetStatus.RUNNING))  # first sight: left stopped
        assert active_state(systemd, units.sleeper) == "inactive"
        assert only(provider).status is ServiceStatus.STOPPED

        await provider.apply(observed(TargetStatus.STOPPED))  # a new target...
        await provider.apply(observed(TargetStatus.RUNNING))  # ...and back (an override ends)
        assert active_state(systemd, units.sleeper) == "active"

        systemd.systemctl("stop", units.sleeper)  # from outside: observed, not corrected
        await provider.apply(observed(TargetStatus.RUNNING))
        assert active_state(systemd, units.sleeper) == "inactive"
