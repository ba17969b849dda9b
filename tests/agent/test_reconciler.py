"""The reconciler keeps enforced services at target, with backoff and a limit; real processes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from drover.agent.providers.process import ProcessProvider
from drover.agent.reconciler import Reconciler
from drover.bus.messages import DesiredService, ServiceState
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from tests.conftest import eventually, starts

Journaled = Callable[[str], tuple[list[str], Path]]


@dataclass
class Rig:
    provider: ProcessProvider
    reconciler: Reconciler
    reported: list[ServiceState]

    async def apply(self, *desired: DesiredService) -> None:
        self.reconciler.desired_changed(desired)
        await self.provider.apply(desired)

    def last(self) -> ServiceState:
        return self.reported[-1]


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with asyncio.TaskGroup() as tg:
        clock = SystemClock()
        provider = ProcessProvider("h1", tmp_path / "logs", clock, tg)
        reported: list[ServiceState] = []
        reconciler = Reconciler(provider.act, clock, tg, reported.append, backoff_base=0.05)
        provider.subscribe(reconciler.on_state)
        yield Rig(provider, reconciler, reported)
        reconciler.close()
        await provider.close()


def spec(command: list[str], policy: Policy = Policy.ENFORCE, attempts: int = 5) -> DesiredService:
    return DesiredService(
        application="shop",
        service="web",
        provider="process",
        target=TargetStatus.RUNNING,
        command=command,
        stop_timeout=2.0,
        policy=policy,
        max_attempts=attempts,
    )


async def test_a_crashed_enforced_service_is_brought_back(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    command, journal = journaled_service("web")
    async with rig(tmp_path) as r:
        await r.apply(spec(command))
        await eventually(lambda: len(starts(journal)) == 1)
        os.kill(int(starts(journal)[0]), 9)
        await eventually(lambda: len(starts(journal)) == 2)
        await eventually(lambda: r.last().status is ServiceStatus.RUNNING)
        assert r.last().convergence is Convergence.OK
        assert r.last().restarts == 1
        seen = [(s.status, s.convergence) for s in r.reported]
        assert (ServiceStatus.FAILED, Convergence.CONVERGING) in seen


def crashing_command(journal: Path) -> list[str]:
    """A service that writes an 'x' to `journal` each time it starts, then exits with 3."""
    return [
        sys.executable,
        "-S",
        "-c",
        f"open({str(journal)!r}, 'a').write('x'); raise SystemExit(3)",
    ]


async def test_a_crash_loop_ends_as_failed_to_converge(tmp_path: Path) -> None:
    journal = tmp_path / "crashes"
    dies_at_once = crashing_command(journal)
    async with rig(tmp_path) as r:
        await r.apply(spec(dies_at_once, attempts=3))
        await eventually(lambda: r.last().convergence is Convergence.FAILED, timeout=20)
        await asyncio.sleep(0.5)  # no more attempts after giving up
        assert journal.read_text() == "xxxx"  # the first start, then 3 attempts
        assert (r.last().status, r.last().exit_code) == (ServiceStatus.FAILED, 3)


async def test_an_observed_service_is_reported_never_corrected(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    command, journal = journaled_service("web")
    async with rig(tmp_path) as r:
        await r.apply(spec(command, policy=Policy.OBSERVE))
        await eventually(lambda: len(starts(journal)) == 1)
        os.kill(int(starts(journal)[0]), 9)
        await eventually(lambda: r.last().convergence is Convergence.OBSERVED)
        await asyncio.sleep(0.5)
        assert len(starts(journal)) == 1
        assert r.last().status is ServiceStatus.FAILED


async def test_a_new_desired_state_gives_a_given_up_service_new_attempts(tmp_path: Path) -> None:
    journal = tmp_path / "crashes"
    dies_at_once = crashing_command(journal)
    async with rig(tmp_path) as r:
        await r.apply(spec(dies_at_once, attempts=1))
        await eventually(lambda: r.last().convergence is Convergence.FAILED, timeout=20)
        before = len(journal.read_text())
        await r.apply(spec(dies_at_once, attempts=2))
        await eventually(
            lambda: (
                r.last().convergence is Convergence.FAILED
                and len(journal.read_text()) >= before + 2
            ),
            timeout=20,
        )


async def test_shutting_down_does_not_bring_anything_back(
    tmp_path: Path, journaled_service: Journaled
) -> None:
    command, journal = journaled_service("web")
    async with rig(tmp_path) as r:
        await r.apply(spec(command))
        await eventually(lambda: len(starts(journal)) == 1)
    # rig closed the reconciler, then stopped the process: it must stay stopped
    await asyncio.sleep(0.5)
    assert len(starts(journal)) == 1


async def test_a_slow_start_is_not_run_twice_by_apply_and_the_reconciler(tmp_path: Path) -> None:
    from drover.agent.providers.script import ScriptProvider

    state, log = tmp_path / "state", tmp_path / "runs"
    ctl = tmp_path / "ctl.py"
    ctl.write_text(
        "import sys, time, pathlib\n"
        f"state, log = pathlib.Path({str(state)!r}), pathlib.Path({str(log)!r})\n"
        "cmd = sys.argv[1]\n"
        "if cmd == 'status':\n"
        "    sys.exit(0 if state.exists() and state.read_text() == 'up' else 3)\n"
        "with log.open('a') as f: f.write(cmd + '\\n')\n"
        "time.sleep(1.5)\n"
        "state.write_text('up' if cmd == 'start' else 'down')\n"
    )
    argv = [sys.executable, "-S", str(ctl)]
    desired = DesiredService(
        application="shop",
        service="web",
        provider="script",
        target=TargetStatus.RUNNING,
        status_command=[*argv, "status"],
        start_command=[*argv, "start"],
        stop_command=[*argv, "stop"],
        check_interval=60.0,
    )
    reported: list[ServiceState] = []
    async with asyncio.TaskGroup() as tg:
        clock = SystemClock()
        provider = ScriptProvider("h1", clock, tg)
        reconciler = Reconciler(provider.act, clock, tg, reported.append, backoff_base=0.05)
        provider.subscribe(reconciler.on_state)
        reconciler.desired_changed([desired])
        await provider.apply([desired])
        await eventually(lambda: reported and reported[-1].status is ServiceStatus.RUNNING)
        await asyncio.sleep(1.0)  # time for a second, wrong, start to show
        assert log.read_text().split() == ["start"]
        reconciler.close()
        await provider.close()
