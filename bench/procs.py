"""Child processes of a benchmark and what /proc says about them.

Every child gets PR_SET_PDEATHSIG, so a benchmark that is killed outright still takes its
children with it; `stop` ends one by its own pid, SIGTERM first and SIGKILL after a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drover.ops.cancels import bounded

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except FileNotFoundError:
            return "(no log)"

    async def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await bounded(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await bounded(self.process.wait(), 5)


async def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    stdout_pipe: bool = False,
) -> Child:
    """Start `argv`; stderr (and stdout, unless piped) go to `log`."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else out,
            stderr=out,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log)


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of `pid`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid`, in clock ticks (CLK_TCK a second)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
    return int(fields[11]) + int(fields[12])  # fields 14 and 15


@dataclass
class IdleFigures:
    """RSS and CPU of one process over a window in which nothing was asked of it."""

    pid: int
    seconds: float = 0.0
    ticks: int = 0
    rss_mb: list[float] = field(default_factory=list)  # one sample a second

    @property
    def cpu_percent(self) -> float:
        """CPU time as a percentage of one core over the window."""
        return 100.0 * self.ticks / CLK_TCK / self.seconds if self.seconds else 0.0

    @property
    def rss_mb_mean(self) -> float:
        return sum(self.rss_mb) / len(self.rss_mb)

    @property
    def rss_mb_max(self) -> float:
        return max(self.rss_mb)

    def as_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "seconds": round(self.seconds, 3),
            "cpu_ticks": self.ticks,
            "clk_tck": CLK_TCK,
            "cpu_percent_of_one_core": self.cpu_percent,
            "rss_mb_mean": self.rss_mb_mean,
            "rss_mb_max": self.rss_mb_max,
            "rss_mb_samples": [round(v, 3) for v in self.rss_mb],
        }


async def sample_idle(
    pids: Mapping[str, int], seconds: float, interval: float = 1.0
) -> dict[str, IdleFigures]:
    """Sample RSS every `interval` and CPU ticks at both ends of a `seconds` window, for every
    process at once (the same window for all)."""
    loop = asyncio.get_running_loop()
    figures = {name: IdleFigures(pid) for name, pid in pids.items()}
    start_ticks = {name: cpu_ticks(pid) for name, pid in pids.items()}
    start = loop.time()
    end = start + seconds
    while True:
        for fig in figures.values():
            fig.rss_mb.append(rss_bytes(fig.pid) / 1e6)
        now = loop.time()
        if now >= end:
            break
        await asyncio.sleep(min(interval, end - now))
    elapsed = loop.time() - start
    for name, fig in figures.items():
        fig.ticks = cpu_ticks(fig.pid) - start_ticks[name]
        fig.seconds = elapsed
    return figures
