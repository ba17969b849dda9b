"""TransientProcessProvider against a real systemd booted in a namespace: supervised processes as
transient units, which outlive the agent that started them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drover.agent.providers.base import OperationFailed
from drover.agent.providers.systemd.transient import (
    Definition,
    TransientProcessProvider,
    transient_properties,
    transient_unit_name,
)
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from tests.agent.systemd.conftest import connected_as
from tests.conftest import eventually
from tests.harness import fleet_of
from tests.systemd_namespace import SystemdNamespace

needs_systemd = pytest.mark.systemd

SLEEP = ["/bin/sleep", "infinity"]
# Writes what it was given (an environment variable, its directory) to a file, then idles.
REPORTER = (
    "import os, sys, time\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write(os.environ.get('GREETING', '-') + ' ' + os.getcwd())\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)
STARTS = ("StartTransientUnit", "StartUnit", "RestartUnit", "StopUnit")

_numbers = itertools.count(1)


@pytest.fixture
def app(systemd: SystemdNamespace) -> Iterator[str]:
    """An application name of the test's own, so its units are its own; stopped afterwards."""
    name = f"tr{next(_numbers)}"
    yield name
    systemd.systemctl("stop", f"drover-{name}-*.service", check=False)


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder seen alike inside the namespace (its /tmp is private) and out."""
    folder = Path(tempfile.mkdtemp(prefix="drover-transient-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def process(
    app: str,
    service: str = "web",
    command: list[str] = SLEEP,
    target: TargetStatus = TargetStatus.RUNNING,
    **fields: Any,
) -> DesiredService:
    return DesiredService(
        application=app,
        service=service,
        provider="process",
        target=target,
        command=command,
        **fields,
    )


def transient(
    systemd: SystemdNamespace, secrets_dir: Path | None = None
) -> contextlib.AbstractAsyncContextManager[tuple[TransientProcessProvider, list[ServiceState]]]:
    """A connected provider (one agent's) and every state it has delivered; closed at the end.
    `secrets_dir`: where it writes secrets for a start (else nowhere it may)."""
    where = secrets_dir or Path("/nonexistent/secrets")
    return connected_as(systemd, TransientProcessProvider, secrets_dir=where)


def show(systemd: SystemdNamespace, unit: str, *properties: str) -> dict[str, str]:
    """What systemd itself says, read without drover."""
    out = systemd.systemctl("show", f"--property={','.join(properties)}", unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line)


def main_pid(systemd: SystemdNamespace, unit: str) -> int:
    return int(show(systemd, unit, "MainPID")["MainPID"])


def only(provider: TransientProcessProvider) -> ServiceState:
    [state] = provider.states()
    return state


def brief(state: ServiceState) -> tuple[ServiceStatus, int | None, int | None, str]:
    return state.status, state.pid, state.exit_code, state.message


# -- pure ---------------------------------------------------------------------------------------


def test_the_unit_is_named_after_application_and_service_and_told_how_to_run() -> None:
    spec = process("shop", command=["app", "--port", "80"], env={"A": "1"}, cwd="/srv/shop")
    assert transient_unit_name(spec) == "drover-shop-web.service"
    assert {name: value.value for name, value in transient_properties(spec)} == {
        "Description": "drover: shop/web",
        "Type": "exec",
        "ExecStart": [("app", ["app", "--port", "80"], False)],
        "Environment": ["A=1"],
        "KillMode": "control-group",
        "TimeoutStopUSec": 10_000_000,
        "CollectMode": "inactive-or-failed",
        "WorkingDirectory": "/srv/shop",
    }


def test_a_unit_runs_as_desired_when_command_environment_and_directory_match() -> None:
    # as GetAll on org.freedesktop.systemd1.Service answered for a unit drover created
    recorded = {
        "ExecStart": [
            ("/bin/sleep", ["/bin/sleep", "infinity"], False, 1795451393905312, 5683576, 0, 0, 51)
        ],
        "Environment": ["B=x y", "A=1"],
        "WorkingDirectory": "/var/tmp",
    }
    spec = process("shop", env={"A": "1", "B": "x y"}, cwd="/var/tmp")
    assert Definition.of_unit(recorded) == Definition.desired(spec)
    for changed in (
        {"command": ["/bin/sleep", "3600"]},
        {"env": {"A": "1"}},
        {"cwd": "/srv"},
    ):
        assert Definition.of_unit(recorded) != Definition.desired(
            spec.model_copy(update=changed)
        ), changed


# -- against systemd ----------------------------------------------------------------------------


@needs_systemd
async def test_apply_runs_the_command_as_a_transient_unit_reporting_its_main_pid(
    systemd: SystemdNamespace, app: str, work: Path
) -> None:
    (work / "reporter.py").write_text(REPORTER)
    told = work / "told"
    command = [sys.executable, "-S", str(work / "reporter.py"), str(told)]
    spec = process(app, command=command, env={"GREETING": "hello"}, cwd=str(work), stop_timeout=3)
    unit = f"drover-{app}-web.service"
    async with transient(systemd) as (provider, seen):
        await provider.apply([spec])

        pid = main_pid(systemd, unit)
        assert only(provider).model_dump(exclude={"since"}) == {
            "v": 1,
            "host": "h1",
            "application": app,
            "service": "web",
            "provider": "process",
            "status": ServiceStatus.RUNNING,
            "pid": pid,
            "exit_code": None,
            "restarts": 0,
            "message": "",
            "convergence": None,
        }
        assert seen[-1] == only(provider)
        assert show(
            systemd,
            unit,
            "ActiveState",
            "Description",
            "Transient",
            "Type",
            "KillMode",
            "CollectMode",
            "TimeoutStopUSec",
            "Restart",
        ) == {
            "ActiveState": "active",
            "Description": f"drover: {app}/web",
            "Transient": "yes",
            "Type": "exec",
            "KillMode": "control-group",
            "CollectMode": "inactive-or-failed",
            "TimeoutStopUSec": "3s",
            "Restart": "no",  # a crash is the reconciler's to handle
        }
        await eventually(lambda: told.exists() and told.read_text() == f"hello {work}")


@needs_systemd
async def test_start_restart_and_stop_through_act(systemd: SystemdNamespace, app: str) -> None:
    unit = f"drover-{app}-web.service"
    async with transient(systemd) as (provider, _):
        await provider.apply([process(app, target=TargetStatus.STOPPED)])
        assert brief(only(provider)) == (ServiceStatus.STOPPED, None, None, "")
        assert show(systemd, unit, "LoadState") == {"LoadState": "not-found"}  # not created

        line = await provider.act(app, "web", ActionKind.START)
        first = main_pid(systemd, unit)
        assert line == f"started {unit} (pid {first})"
        assert brief(only(provider)) == (ServiceStatus.RUNNING, first, None, "")

        line = await provider.act(app, "web", ActionKind.RESTART)
        second = main_pid(systemd, unit)
        assert second not in (0, first)
        assert line == f"restarted {unit} (pid {first} → {second})"
        assert brief(only(provider)) == (ServiceStatus.RUNNING, second, None, "")

        line = await provider.act(app, "web", ActionKind.STOP)
        assert line == f"stopped {unit} (was pid {second})"
        assert brief(only(provider)) == (ServiceStatus.STOPPED, None, -15, "")  # by SIGTERM
        # collected, as CollectMode says, so the next start creates it anew
        assert show(systemd, unit, "LoadState") == {"LoadState": "not-found"}

        assert await provider.act(app, "web", ActionKind.STOP) == f"stopped {unit} (was pid -)"


@needs_systemd
async def test_a_command_that_cannot_be_executed_fails_the_start_and_shows_failed(
    systemd: SystemdNamespace, app: str, work: Path
) -> None:
    unit = f"drover-{app}-web.service"
    spec = process(app, command=[str(work / "missing"), "--serve"], target=TargetStatus.STOPPED)
    async with transient(systemd) as (provider, _):
        await provider.apply([spec])

        with pytest.raises(OperationFailed) as failed:
            await provider.act(app, "web", ActionKind.START)

        assert failed.value.reason == (
            f"start job for {unit} ended 'failed' (failed, result: exit-code)"
        )
        # 203: systemd's EXIT_EXEC; the unit is collected, its failure still reported
        assert brief(only(provider)) == (ServiceStatus.FAILED, None, 203, "result: exit-code")

        await provider.apply([spec.model_copy(update={"target": TargetStatus.RUNNING})])
        assert brief(only(provider)) == (ServiceStatus.FAILED, None, 203, "result: exit-code")


@needs_systemd
async def test_units_outlive_the_provider_and_a_new_one_adopts_them_without_restarting(
    systemd: SystemdNamespace, app: str
) -> None:
    unit = f"drover-{app}-web.service"
    wanted = [process(app)]
    async with transient(systemd) as (first, _):
        await first.apply(wanted)
        pid = main_pid(systemd, unit)
        started = show(systemd, unit, "ExecMainStartTimestampMonotonic")
    assert not first.manager.connected
    assert show(systemd, unit, "ActiveState", "MainPID") == {
        "ActiveState": "active",
        "MainPID": str(pid),
    }

    async with transient(systemd) as (second, seen):  # a new agent
        await second.apply(wanted)

        assert brief(only(second)) == (ServiceStatus.RUNNING, pid, None, "")
        assert [s.status for s in seen] == [ServiceStatus.RUNNING]  # never anything else
        assert not set(STARTS) & set(second.manager.calls)
    assert main_pid(systemd, unit) == pid
    assert show(systemd, unit, "ExecMainStartTimestampMonotonic") == started


@needs_systemd
async def test_a_unit_running_another_command_or_environment_is_recreated(
    systemd: SystemdNamespace, app: str
) -> None:
    unit = f"drover-{app}-web.service"
    async with transient(systemd) as (first, _):
        await first.apply([process(app)])
        before = main_pid(systemd, unit)

    async with transient(systemd) as (second, _):  # a new agent, with a new config
        await second.apply([process(app, command=["/bin/sleep", "3600"])])
        after = main_pid(systemd, unit)
        assert after not in (0, before)
        assert "argv[]=/bin/sleep 3600 " in show(systemd, unit, "ExecStart")["ExecStart"]
        assert brief(only(second)) == (ServiceStatus.RUNNING, after, None, "")

        await second.apply([process(app, command=["/bin/sleep", "3600"], env={"MODE": "x"})])
        assert main_pid(systemd, unit) not in (0, after)
        assert show(systemd, unit, "Environment") == {"Environment": "MODE=x"}

        await second.apply([process(app, command=["/bin/sleep", "3600"], env={"MODE": "x"})])
        assert second.manager.calls["StartTransientUnit"] == 2  # the same again: left alone


@needs_systemd
async def test_secrets_reach_the_unit_from_a_file_gone_once_it_started_never_its_properties(
    systemd: SystemdNamespace, app: str, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What systemd's environment file parser could take for syntax, and two lines.
    value = 'p4ss "quoted" $HOME `cmd` \\ back\\slash # not a comment\nsecond line '
    monkeypatch.setenv("TR_SECRET", value)
    (work / "reporter.py").write_text(REPORTER)
    told = work / "told"
    command = [sys.executable, "-S", str(work / "reporter.py"), str(told)]
    spec = process(app, command=command, secrets={"GREETING": "env:TR_SECRET"}, cwd=str(work))
    unit = f"drover-{app}-web.service"
    secrets = work / "secrets"
    async with transient(systemd, secrets) as (provider, _):
        await provider.apply([spec])
        await eventually(lambda: told.exists() and told.read_text() == f"{value} {work}")
        pid = main_pid(systemd, unit)

        # Not in what anyone may read of the unit; the file it came from is gone.
        shown = show(systemd, unit, "Environment", "EnvironmentFiles")
        assert "p4ss" not in repr(shown)
        assert shown["Environment"] == ""
        assert shown["EnvironmentFiles"].startswith(f"{secrets}/{unit}.")
        assert list(secrets.iterdir()) == []
        assert secrets.stat().st_mode & 0o777 == 0o700

        # The same references again: left alone. A restart through drover writes it anew.
        await provider.apply([spec])
        assert provider.manager.calls["StartTransientUnit"] == 1
        told.unlink()
        await provider.act(app, "web", ActionKind.RESTART)
        await eventually(lambda: told.exists() and told.read_text() == f"{value} {work}")
        assert main_pid(systemd, unit) not in (0, pid)
        assert list(secrets.iterdir()) == []

        # Another reference: the unit is recreated. One that cannot be had fails the start.
        monkeypatch.setenv("TR_OTHER", "other")
        await provider.apply([spec.model_copy(update={"secrets": {"GREETING": "env:TR_OTHER"}})])
        await eventually(lambda: told.read_text() == f"other {work}")
        missing = {"GREETING": "env:TR_NOT_SET"}
        await provider.act(app, "web", ActionKind.STOP)
        await provider.apply([spec.model_copy(update={"secrets": missing})])
        state = only(provider)
        assert state.status is ServiceStatus.FAILED
        assert state.message == (
            "cannot start: secret env:TR_NOT_SET for GREETING: not set in the agent's environment"
        )
        with pytest.raises(OperationFailed, match="secret env:TR_NOT_SET for GREETING: not set"):
            await provider.act(app, "web", ActionKind.START)
        assert list(secrets.iterdir()) == []


@needs_systemd
async def test_a_service_no_longer_desired_has_its_unit_stopped(
    systemd: SystemdNamespace, app: str
) -> None:
    web, worker = f"drover-{app}-web.service", f"drover-{app}-worker.service"
    async with transient(systemd) as (provider, _):
        await provider.apply([process(app), process(app, "worker")])
        assert [show(systemd, u, "ActiveState")["ActiveState"] for u in (web, worker)] == [
            "active",
            "active",
        ]

        await provider.apply([process(app, "worker")])
        assert [s.service for s in provider.states()] == ["worker"]
        assert show(systemd, web, "LoadState") == {"LoadState": "not-found"}  # stopped, collected
        assert show(systemd, worker, "ActiveState") == {"ActiveState": "active"}

        await provider.apply([process(app, "worker", target=TargetStatus.STOPPED)])
        assert brief(only(provider))[:2] == (ServiceStatus.STOPPED, None)
        assert show(systemd, worker, "LoadState") == {"LoadState": "not-found"}


@needs_systemd
async def test_a_crash_is_reported_failed_by_signal_and_a_start_brings_it_back(
    systemd: SystemdNamespace, app: str
) -> None:
    unit = f"drover-{app}-web.service"
    async with transient(systemd) as (provider, _):
        await provider.apply([process(app)])
        pid = main_pid(systemd, unit)
        calls = provider.manager.calls.copy()

        kill = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(systemd.pid), "-p", "-m", "kill", "-9", str(pid)
        )
        assert await kill.wait() == 0
        await eventually(lambda: only(provider).status is ServiceStatus.FAILED)

        assert brief(only(provider)) == (ServiceStatus.FAILED, None, -9, "result: signal")
        assert provider.manager.calls == calls  # not one D-Bus call: only signals
        assert show(systemd, unit, "LoadState") == {"LoadState": "not-found"}  # collected

        # what the reconciler does next
        line = await provider.act(app, "web", ActionKind.START)
        again = main_pid(systemd, unit)
        assert line == f"started {unit} (pid {again})"
        assert brief(only(provider)) == (ServiceStatus.RUNNING, again, None, "")


@needs_systemd
async def test_services_whose_unit_names_would_clash_are_not_run_twice(
    systemd: SystemdNamespace, app: str
) -> None:
    # app-x/y and app/x-y would both be drover-<app>-x-y.service
    first, second = process(f"{app}-x", "y"), process(app, "x-y")
    async with transient(systemd) as (provider, _):
        await provider.apply([first, second])

        states = {(s.application, s.service): s for s in provider.states()}
        assert states[(f"{app}-x", "y")].status is ServiceStatus.RUNNING
        assert (states[(app, "x-y")].status, states[(app, "x-y")].message) == (
            ServiceStatus.UNKNOWN,
            f"unit name drover-{app}-x-y.service is already that of {app}-x/y",
        )
        with pytest.raises(OperationFailed, match="already that of"):
            await provider.act(app, "x-y", ActionKind.STOP)
        assert show(systemd, f"drover-{app}-x-y.service", "ActiveState") == {
            "ActiveState": "active"
        }


@needs_systemd
async def test_a_unit_of_that_name_that_drover_did_not_create_is_left_alone(
    systemd: SystemdNamespace, app: str
) -> None:
    unit = f"drover-{app}-web.service"
    systemd.write_units({unit: "[Service]\nExecStart=/bin/sleep infinity\n"})
    try:
        systemd.systemctl("start", unit)
        pid = main_pid(systemd, unit)
        async with transient(systemd) as (provider, _):
            await provider.apply([process(app, command=["/bin/sleep", "5"])])
            assert brief(only(provider)) == (
                ServiceStatus.UNKNOWN,
                None,
                None,
                f"{unit} exists and is not a transient unit drover created: left alone",
            )
            with pytest.raises(OperationFailed, match="not a transient unit"):
                await provider.act(app, "web", ActionKind.RESTART)
            await provider.apply([])
        assert show(systemd, unit, "ActiveState", "MainPID") == {
            "ActiveState": "active",
            "MainPID": str(pid),
        }
    finally:
        systemd.systemctl("stop", unit, check=False)
        (systemd.root / "run/systemd/system" / unit).unlink()
        systemd.systemctl("daemon-reload")


# -- through the whole agent --------------------------------------------------------------------


@needs_systemd
async def test_an_agent_restart_leaves_the_process_running_and_the_new_agent_adopts_it(
    nats_server: EmbeddedNats, tmp_path: Path, systemd: SystemdNamespace, app: str
) -> None:
    unit = f"drover-{app}-sleeper.service"
    config = {
        "apps.yaml": (
            f"applications:\n  {app}:\n    hosts: [h1]\n    services:\n"
            "      sleeper: {command: [/bin/sleep, infinity], stop_timeout: 2}\n"
        )
    }
    async with fleet_of(nats_server, tmp_path, config) as fleet:
        await fleet.start_server()
        first = await fleet.start_agent("h1", systemd_bus=systemd.bus_address)
        assert first.providers is not None
        assert isinstance(first.providers.by_name["process"], TransientProcessProvider)

        async def reported() -> dict[str, Any] | None:
            placed = (await fleet.get(f"/api/v1/applications/{app}"))["services"][0]["hosts"]
            if placed and placed[0]["status"] == "running" and placed[0]["pid"]:
                return dict(placed[0])
            return None

        await eventually(reported)
        running = await reported()
        assert running is not None
        pid = main_pid(systemd, unit)
        assert running["pid"] == pid

        await fleet.running[-1].halt()  # the agent drains and its run() returns
        assert show(systemd, unit, "ActiveState", "MainPID") == {
            "ActiveState": "active",
            "MainPID": str(pid),
        }

        second = await fleet.start_agent("h1", systemd_bus=systemd.bus_address)
        assert second.providers is not None
        adopter = second.providers.by_name["process"]
        assert isinstance(adopter, TransientProcessProvider)
        await eventually(lambda: [s.pid for s in adopter.states()] == [pid])

        async def reported_by_the_new_agent() -> bool:
            record = await fleet.get("/api/v1/hosts/h1")
            services = [(s["name"], s["status"], s["pid"]) for s in record["services"]]
            started = datetime.fromisoformat(record["started_at"])
            return started == second.reporter.started_at and services == [
                ("sleeper", "running", pid)
            ]

        await eventually(reported_by_the_new_agent)
        assert not set(STARTS) & set(adopter.manager.calls)
        assert main_pid(systemd, unit) == pid
