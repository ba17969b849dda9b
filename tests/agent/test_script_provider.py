import asyncio
import contextlib
import logging
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drover.agent.errors import UnknownService
from drover.agent.providers.base import OperationFailed
from drover.agent.providers.script import ScriptProvider
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from tests.conftest import eventually

# A service simulated by a state file. Every run appends its action to a journal first.
SERVICE_SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    action, state, journal = sys.argv[1:4]
    with open(journal, "a") as out:
        out.write(action + "\\n")
    def read():
        return open(state).read().strip() if os.path.exists(state) else "down"
    def hang():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited: only SIGKILL will do
        child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(3600)"])
        open(state + ".pids", "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(3600)
    if action == "status":
        now = read()
        if now == "hang":
            hang()
        if now != "up":
            print("state file says", now)
        sys.exit({"up": 0, "down": 3}.get(now, 1))
    elif action in ("start", "stop"):
        open(state, "w").write("up" if action == "start" else "down")
    elif action == "fail":
        for n in range(1, 15):
            print("line", n, flush=True)
        print("line 15", file=sys.stderr, flush=True)
        sys.exit(1)
    elif action == "hang":
        hang()
    elif action == "chatty":
        sys.stdout.write("x" * 200_000 + "\\nthe last line\\n")
        sys.exit(2)
    elif action == "daemonize":
        child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(60)"])
        open(state + ".pids", "w").write(str(child.pid))
        open(state, "w").write("up")
    """
)


@dataclass
class FakeService:
    """A service whose state lives in a file, and the commands that run it."""

    script: Path
    state: Path
    journal: Path

    def argv(self, action: str) -> list[str]:
        # -S: no site-packages, so a quick start and no coverage hook inside the script.
        return [sys.executable, "-S", str(self.script), action, str(self.state), str(self.journal)]

    def spec(
        self,
        target: TargetStatus = TargetStatus.RUNNING,
        *,
        status: str = "status",
        start: str = "start",
        timeout: float = 5.0,
        check_interval: float = 60.0,
    ) -> DesiredService:
        return DesiredService(
            application="shop",
            service="web",
            provider="script",
            target=target,
            status_command=self.argv(status),
            start_command=self.argv(start),
            stop_command=self.argv("stop"),
            timeout=timeout,
            check_interval=check_interval,
        )

    def set(self, state: str) -> None:
        self.state.write_text(state)

    def runs(self) -> list[str]:
        return self.journal.read_text().split() if self.journal.exists() else []

    def pids(self) -> list[int]:
        path = self.state.with_name(self.state.name + ".pids")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def fake(tmp_path: Path) -> FakeService:
    script = tmp_path / "service.py"
    script.write_text(SERVICE_SCRIPT)
    return FakeService(script, tmp_path / "state", tmp_path / "journal")


@contextlib.asynccontextmanager
async def script_provider(seen: list[ServiceState] | None = None) -> AsyncIterator[ScriptProvider]:
    async with asyncio.TaskGroup() as tg:
        provider = ScriptProvider("h1", SystemClock(), tg)
        if seen is not None:
            provider.subscribe(seen.append)
        try:
            yield provider
        finally:
            await provider.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _status(provider: ScriptProvider) -> tuple[ServiceStatus, str]:
    [state] = provider.states()
    return state.status, state.message


async def test_apply_starts_a_stopped_service_whose_target_is_running(fake: FakeService) -> None:
    fake.set("down")
    seen: list[ServiceState] = []
    async with script_provider(seen) as provider:
        await provider.apply([fake.spec(TargetStatus.RUNNING)])
        assert fake.runs() == ["status", "start", "status"]
        assert [(s.status, s.provider) for s in seen] == [
            (ServiceStatus.STOPPED, "script"),
            (ServiceStatus.RUNNING, "script"),
        ]
        assert provider.states() == [seen[-1]]


async def test_apply_stops_a_running_service_whose_target_is_stopped(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED)])
        assert fake.runs() == ["status", "stop", "status"]
        assert _status(provider) == (ServiceStatus.STOPPED, "")


async def test_apply_leaves_a_service_already_at_its_target_alone(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.RUNNING)])
        await provider.apply([fake.spec(TargetStatus.RUNNING)])  # unchanged: nothing to do
        assert fake.runs() == ["status"]
        assert _status(provider) == (ServiceStatus.RUNNING, "")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, (ServiceStatus.RUNNING, "")),
        (3, (ServiceStatus.STOPPED, "")),
        (1, (ServiceStatus.FAILED, "status exited 1: oops")),
        (4, (ServiceStatus.FAILED, "status exited 4: oops")),
    ],
)
async def test_exit_codes_map_to_running_stopped_and_failed(
    fake: FakeService, code: int, expected: tuple[ServiceStatus, str]
) -> None:
    status = [sys.executable, "-S", "-c", f"import sys; print('first\\noops'); sys.exit({code})"]
    spec = fake.spec().model_copy(update={"status_command": status, "start_command": ["true"]})
    async with script_provider() as provider:
        await provider.apply([spec])
        assert _status(provider) == expected


async def test_a_status_that_cannot_be_executed_is_unknown_with_the_reason(
    fake: FakeService, tmp_path: Path
) -> None:
    spec = fake.spec().model_copy(update={"status_command": [str(tmp_path / "missing")]})
    async with script_provider() as provider:
        await provider.apply([spec])
        status, message = _status(provider)
        assert status is ServiceStatus.UNKNOWN
        assert message.startswith("cannot run status: [Errno 2]")


async def test_a_status_that_hangs_is_failed_and_its_process_group_killed(
    fake: FakeService,
) -> None:
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED, status="hang", timeout=0.5)])
        assert _status(provider) == (ServiceStatus.FAILED, "status timed out after 0.5s")
        script, child = fake.pids()
        await eventually(lambda: not _alive(script) and not _alive(child), timeout=2)


async def test_restart_runs_stop_then_start(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec()])
        line = await provider.act("shop", "web", ActionKind.RESTART)
        assert line == "restarted (status: running)"
        assert fake.runs() == ["status", "stop", "status", "start", "status"]


async def test_start_and_stop_say_what_the_status_is_afterwards(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec()])
        assert await provider.act("shop", "web", ActionKind.STOP) == "stopped (status: stopped)"
        assert await provider.act("shop", "web", ActionKind.START) == "started (status: running)"
        assert fake.state.read_text() == "up"


async def test_a_failing_start_raises_operation_failed_with_exit_code_and_output_tail(
    fake: FakeService,
) -> None:
    fake.set("down")
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED, start="fail")])
        with pytest.raises(OperationFailed) as raised:
            await provider.act("shop", "web", ActionKind.START)
        tail = "\n".join(f"line {n}" for n in range(6, 16))
        assert (raised.value.application, raised.value.service) == ("shop", "web")
        assert raised.value.reason == f"start exited 1: {tail}"
        assert fake.runs() == ["status", "status", "fail", "status"]  # checked first: idempotent
        assert _status(provider) == (ServiceStatus.STOPPED, "")


async def test_an_unknown_service_raises_unknown_service() -> None:
    async with script_provider() as provider:
        with pytest.raises(UnknownService, match="shop/nope"):
            await provider.act("shop", "nope", ActionKind.START)


async def test_a_start_that_leaves_a_daemon_behind_returns_without_killing_it(
    fake: FakeService,
) -> None:
    fake.set("down")
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED, start="daemonize")])
        began = time.monotonic()
        assert await provider.act("shop", "web", ActionKind.START) == "started (status: running)"
        assert time.monotonic() - began < 3  # well within its 5 s timeout
        [daemon] = fake.pids()
        assert _alive(daemon)
        os.kill(daemon, 9)


async def test_a_change_made_outside_drover_is_seen_within_one_check_interval(
    fake: FakeService,
) -> None:
    fake.set("up")
    seen: list[ServiceState] = []
    async with script_provider(seen) as provider:
        await provider.apply([fake.spec(check_interval=1)])
        fake.set("down")
        await eventually(lambda: _status(provider)[0] is ServiceStatus.STOPPED, timeout=2.0)
        # Only changes are published, and the checker observes: it does not start it again.
        assert [s.status for s in seen] == [ServiceStatus.RUNNING, ServiceStatus.STOPPED]
        assert "start" not in fake.runs()


async def test_a_service_no_longer_listed_is_forgotten_without_being_stopped(
    fake: FakeService,
) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec()])
        await provider.apply([])
        assert provider.states() == []
        assert fake.runs() == ["status"]
        assert fake.state.read_text() == "up"


async def test_a_changed_spec_is_checked_and_brought_to_its_new_target(fake: FakeService) -> None:
    fake.set("up")
    seen: list[ServiceState] = []
    async with script_provider(seen) as provider:
        await provider.apply([fake.spec()])
        await provider.apply([fake.spec(TargetStatus.STOPPED)])
        assert fake.runs() == ["status", "status", "stop", "status"]
        assert [s.status for s in seen] == [ServiceStatus.RUNNING, ServiceStatus.STOPPED]


async def test_close_stops_the_checkers(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec(check_interval=1)])
        await eventually(lambda: fake.runs().count("status") >= 2, timeout=3)
        await provider.close()
        runs = fake.runs()
        await asyncio.sleep(1.5)
        assert fake.runs() == runs


async def test_close_kills_a_status_the_checker_is_still_running(fake: FakeService) -> None:
    fake.set("up")
    async with script_provider() as provider:
        await provider.apply([fake.spec(check_interval=1, timeout=60)])
        fake.set("hang")
        await eventually(lambda: len(fake.pids()) == 2, timeout=3)
        await provider.close()
        script, child = fake.pids()
        await eventually(lambda: not _alive(script) and not _alive(child), timeout=2)


async def test_close_kills_a_start_an_action_is_still_running(fake: FakeService) -> None:
    fake.set("down")
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED, start="hang", timeout=60)])
        acting = asyncio.create_task(provider.act("shop", "web", ActionKind.START))
        await eventually(lambda: len(fake.pids()) == 2, timeout=3)
        await provider.close()
        with pytest.raises(OperationFailed, match="start exited -9"):
            await acting
        script, child = fake.pids()
        await eventually(lambda: not _alive(script) and not _alive(child), timeout=2)


async def test_only_the_end_of_a_long_output_is_kept(fake: FakeService) -> None:
    async with script_provider() as provider:
        await provider.apply([fake.spec(TargetStatus.STOPPED, status="chatty")])
        assert _status(provider) == (ServiceStatus.FAILED, "status exited 2: the last line")


async def test_a_checker_goes_on_after_an_unexpected_error_and_logs_it_once(
    fake: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse_stopped(state: ServiceState) -> None:
        if state.status is ServiceStatus.STOPPED:
            raise RuntimeError("listener broke")

    caplog.set_level(logging.INFO, logger="drover.agent.providers.script")
    fake.set("up")
    async with script_provider() as provider:
        provider.subscribe(refuse_stopped)
        await provider.apply([fake.spec(check_interval=1)])
        fake.set("down")
        await eventually(lambda: _status(provider)[0] is ServiceStatus.STOPPED, timeout=3)
        fake.set("up")
        await eventually(lambda: _status(provider)[0] is ServiceStatus.RUNNING, timeout=3)
    failures = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in failures] == [
        "checking shop/web failed, going on: RuntimeError('listener broke')"
    ]
    assert "checking shop/web works again" in caplog.messages
