import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from drover.agent.errors import UnknownService
from drover.agent.providers.process import ProcessProvider
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from tests.conftest import eventually, starts

Journaled = Callable[[str], tuple[list[str], Path]]


def _spec(
    command: list[str], target: TargetStatus = TargetStatus.RUNNING, service: str = "web"
) -> DesiredService:
    return DesiredService(
        application="shop",
        service=service,
        provider="process",
        target=target,
        command=command,
        stop_timeout=2.0,
    )


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:  # reaped between the two looks
        return False


async def test_apply_starts_running_services_and_leaves_stopped_ones_down(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    web, web_journal = journaled_service("web")
    off, off_journal = journaled_service("off")
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(web), _spec(off, TargetStatus.STOPPED, "off")])
        await eventually(lambda: len(starts(web_journal)) == 1)
        states = {s.service: s for s in provider.states()}
        assert states["web"].status is ServiceStatus.RUNNING
        assert states["off"].status is ServiceStatus.STOPPED
        assert starts(off_journal) == []
        await provider.close()


async def test_restart_replaces_the_process(tmp_path: Path, journaled_service: Journaled) -> None:
    web, journal = journaled_service("web")
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(web)])
        await eventually(lambda: len(starts(journal)) == 1)
        before = provider.states()[0].pid
        line = await provider.act("shop", "web", ActionKind.RESTART)
        after = provider.states()[0].pid
        assert before != after and f"→ {after}" in line
        await eventually(lambda: starts(journal) == [str(before), str(after)])
        assert not _alive(before)
        await provider.close()
        assert not _alive(after)


async def test_a_crash_is_reported_with_its_exit_code_and_left_to_the_reconciler(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    web, journal = journaled_service("web")
    seen: list[ServiceState] = []
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        provider.subscribe(seen.append)
        await provider.apply([_spec(web)])
        await eventually(lambda: len(starts(journal)) == 1)
        first = provider.states()[0].pid
        assert first is not None
        os.kill(first, 9)
        await eventually(lambda: provider.states()[0].status is ServiceStatus.FAILED)
        assert (provider.states()[0].exit_code, provider.states()[0].message) == (
            -9,
            "exited with -9",
        )
        await asyncio.sleep(0.5)
        assert len(starts(journal)) == 1  # bringing it back is the reconciler's decision

        await provider.act("shop", "web", ActionKind.START)
        await eventually(lambda: len(starts(journal)) == 2)
        assert provider.states()[0].restarts == 1
        await provider.close()


async def test_stop_takes_down_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The pid is renamed into place: a plain write could be seen empty, and
    # pid 0 would stand for our own process group.
    parent = [
        sys.executable,
        "-c",
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
        f"open({str(pidfile)!r} + '.new', 'w').write(str(p.pid))\n"
        f"os.rename({str(pidfile)!r} + '.new', {str(pidfile)!r})\n"
        "time.sleep(3600)",
    ]
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(parent)])
        await eventually(pidfile.exists)
        grandchild = int(pidfile.read_text())
        await provider.act("shop", "web", ActionKind.STOP)
        await eventually(lambda: not _alive(grandchild), timeout=5)
        await provider.close()


async def test_a_service_removed_from_the_desired_state_is_stopped(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    web, journal = journaled_service("web")
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(web)])
        await eventually(lambda: len(starts(journal)) == 1)
        pid = provider.states()[0].pid
        await provider.apply([])
        assert provider.states() == []
        assert not _alive(pid)


async def test_a_command_that_cannot_start_is_reported_failed(tmp_path: Path) -> None:
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(["/nonexistent/binary"])])
        state = provider.states()[0]
        assert state.status is ServiceStatus.FAILED
        assert "cannot start" in state.message
        await provider.close()


async def test_acting_on_an_unknown_service_says_which(tmp_path: Path) -> None:
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        with pytest.raises(UnknownService, match="shop/nope"):
            await provider.act("shop", "nope", ActionKind.RESTART)


async def test_output_goes_to_a_log_file_per_service(tmp_path: Path) -> None:
    cmd = [sys.executable, "-u", "-c", "print('hello from web'); import time; time.sleep(3600)"]
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(cmd)])
        log = tmp_path / "logs" / "shop.web.log"
        await eventually(lambda: log.exists() and "hello from web" in log.read_text())
        await provider.close()


async def test_what_a_crashed_service_forked_does_not_outlive_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "forked.pid"
    script = f"sleep 777 & echo $! > {pidfile}; exit 3"
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(["sh", "-c", script], TargetStatus.STOPPED)])
        await provider.act("shop", "web", ActionKind.START)
        await eventually(lambda: pidfile.exists() and pidfile.read_text().strip())
        forked = int(pidfile.read_text())
        await eventually(lambda: not _alive(forked), timeout=5)
        await provider.close()


async def test_a_command_the_kernel_cannot_take_fails_that_service_only(tmp_path: Path) -> None:
    ok = [sys.executable, "-c", "import time; time.sleep(3600)"]
    async with asyncio.TaskGroup() as tg:
        provider = ProcessProvider("h1", tmp_path / "logs", SystemClock(), tg)
        await provider.apply([_spec(["bad\x00arg"], service="a"), _spec(ok, service="b")])
        states = {s.service: s.status for s in provider.states()}
        assert states == {"a": ServiceStatus.FAILED, "b": ServiceStatus.RUNNING}
        await provider.close()
