"""Script services: ones that are neither systemd units nor processes the agent supervises.

Each service is three argv commands. `status` runs every `check_interval` seconds and its exit
code says what the service is doing (the LSB convention: 0 running, 3 stopped, anything else
failed); `start` and `stop` run when an action asks, or once when the service is first taken on
and is not at its target. The checker only observes: a service that goes down outside drover is
reported, not started again.

Every run is bounded by `timeout`, in its own process group, with its output captured (the last
64 KiB). A run that exits leaves its process group alone, because a start script may leave the
service's daemon behind in it; a run that times out or is abandoned is killed with its group.
A daemon that keeps the script's output open after the script exits loses that output (the pipe
is closed shortly after): start scripts should redirect what they leave running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from drover.agent.errors import UnknownService
from drover.agent.providers.base import Listeners, OperationFailed, StateListener
from drover.bus.messages import DesiredService, ServiceState, tail
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.ops.secrets import Redactor, SecretUnavailable, installed

log = logging.getLogger(__name__)

# Runs one of a service's scripts ("status", "start", "stop") to its end or its timeout.
RunScript = Callable[[str, list[str], DesiredService], Awaitable["ScriptRun"]]

OUTPUT_LIMIT = 64 * 1024  # bytes of a run's output kept (the end of it)
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL, and the bound on reaping after SIGKILL
DRAIN_GRACE = 0.5  # seconds to wait for the output to end once the script has exited
TAIL_LINES = 10
TAIL_CHARS = 1000

_DONE = {ActionKind.START: "started", ActionKind.STOP: "stopped", ActionKind.RESTART: "restarted"}


@dataclass(frozen=True)
class ScriptRun:
    """How one run of a script ended."""

    what: str  # "status", "start" or "stop"
    timeout: float
    exit_code: int | None = None  # None when it did not exit on its own
    timed_out: bool = False
    error: str = ""  # why it could not be executed at all
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return tail(lines[-1].strip(), 200) if lines else ""

    def tail(self) -> str:
        lines = self.output.strip().splitlines()[-TAIL_LINES:]
        return tail("\n".join(lines), TAIL_CHARS)

    def describe(self, output: str = "") -> str:
        if self.error:
            return f"cannot run {self.what}: {self.error}"
        if self.timed_out:
            head = f"{self.what} timed out after {self.timeout:g}s"
        else:
            head = f"{self.what} exited {self.exit_code}"
        return f"{head}: {output}" if output else head


def status_of(run: ScriptRun) -> tuple[ServiceStatus, str]:
    """What a run of the status command says about the service, and why."""
    if run.error:
        return ServiceStatus.UNKNOWN, run.describe()
    if run.timed_out:
        return ServiceStatus.FAILED, run.describe()
    if run.exit_code == 0:
        return ServiceStatus.RUNNING, ""
    if run.exit_code == 3:  # LSB: program is not running
        return ServiceStatus.STOPPED, ""
    return ServiceStatus.FAILED, run.describe(run.last_line())


class _Capture(asyncio.SubprocessProtocol):
    """Keeps the end of a script's output and notes when the script and its output end."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.output += data
        if len(self.output) > OUTPUT_LIMIT:
            del self.output[: len(self.output) - OUTPUT_LIMIT]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.closed.set()

    def process_exited(self) -> None:
        self.exited.set()


async def run_script(
    what: str, argv: list[str], spec: DesiredService, running: set[int]
) -> ScriptRun:
    """Run one script to its end or its timeout. `running` holds the pids of runs under way."""
    if not argv:
        return ScriptRun(what, spec.timeout, error="no command given")
    loop = asyncio.get_running_loop()
    try:
        secret = await installed().environment(spec.secrets)
    except SecretUnavailable as err:
        return ScriptRun(what, spec.timeout, error=str(err))
    redactor = Redactor(secret.values())
    try:
        transport, capture = await loop.subprocess_exec(
            _Capture,
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env, **secret},
            cwd=spec.cwd,
            start_new_session=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        # OSError: no such file, no permission, no such cwd; ValueError: a NUL byte in an arg.
        return ScriptRun(what, spec.timeout, error=str(err))
    finally:
        del secret  # held no longer than the start takes
    pid = transport.get_pid()
    running.add(pid)
    try:
        timed_out = not await _within(capture.exited, spec.timeout)
        if timed_out:
            await _terminate_group(pid, capture)
        await _within(capture.closed, DRAIN_GRACE)
    except BaseException:  # cancelled (the provider is closing): take the script down with us
        _kill_group(pid)
        await _within(capture.exited, KILL_GRACE)
        raise
    finally:
        running.discard(pid)
        transport.close()
    return ScriptRun(
        what,
        spec.timeout,
        exit_code=None if timed_out else transport.get_returncode(),
        timed_out=timed_out,
        output=redactor.text(capture.output.decode(errors="replace")),
    )


async def _within(event: asyncio.Event, timeout: float) -> bool:
    try:
        await bounded(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _terminate_group(pid: int, capture: _Capture) -> None:
    """SIGTERM the run's process group, SIGKILL it after KILL_GRACE, and reap the script."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    if not await _within(capture.exited, KILL_GRACE):
        _kill_group(pid)
        if not await _within(capture.exited, KILL_GRACE):
            log.warning("script pid %s did not go after SIGKILL", pid)
    _kill_group(pid)  # stragglers that ignored SIGTERM


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class ScriptService:
    """One script service: its checker, and the lock that keeps its runs one at a time."""

    def __init__(
        self,
        host: str,
        spec: DesiredService,
        clock: Clock,
        notify: StateListener,
        run: RunScript,
        lock: asyncio.Lock,
        previous: ServiceState | None = None,
    ) -> None:
        self.spec = spec
        self._clock = clock
        self._notify = notify
        self._run_script = run
        # One lock per service name, shared with the object this one replaces on a spec
        # change: runs of the old and the new definition never overlap.
        self._lock = lock
        self._checker: asyncio.Task[None] | None = None
        self._retired = False
        self.state = previous or ServiceState(
            host=host,
            application=spec.application,
            service=spec.service,
            provider="script",
            status=ServiceStatus.UNKNOWN,
            since=clock.now(),
            message="not checked yet",
        )

    @property
    def name(self) -> str:
        return f"{self.spec.application}/{self.spec.service}"

    def watch(self, tg: asyncio.TaskGroup) -> None:
        self._checker = tg.create_task(self._check_forever(), name=f"script-check {self.name}")

    async def retire(self) -> None:
        """Stop checking and publishing; a script the checker is running is killed."""
        self._retired = True
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.wait([self._checker])
            self._checker = None

    async def converge(self) -> None:
        """Check once, then run start or stop if the service is not at its target."""
        try:
            async with self._lock:
                await self._check()
                running = self.state.status is ServiceStatus.RUNNING
                if self.spec.target is TargetStatus.RUNNING and not running:
                    what = "start"
                elif self.spec.target is TargetStatus.STOPPED and running:
                    what = "stop"
                else:
                    return
                run = await self._run(what)
                if not run.ok:
                    log.warning("%s: %s", self.name, run.describe(run.tail()))
                await self._check()
        except Exception:
            log.exception("%s: bringing it to its target failed", self.name)

    async def act(self, kind: ActionKind) -> str:
        async with self._lock:
            if kind is not ActionKind.RESTART:
                # Start and stop are idempotent: asked twice (an action and the reconciler,
                # say), the second finds the service where it should be and runs nothing.
                await self._check()
                wanted = (
                    ServiceStatus.RUNNING if kind is ActionKind.START else ServiceStatus.STOPPED
                )
                if self.state.status is wanted:
                    return f"already {wanted}"
            if kind in (ActionKind.STOP, ActionKind.RESTART):
                await self._step("stop")
            if kind in (ActionKind.START, ActionKind.RESTART):
                await self._step("start")
            return f"{_DONE[kind]} (status: {self.state.status})"

    async def _step(self, what: str) -> None:
        run = await self._run(what)
        await self._check()
        if not run.ok:
            reason = run.describe(run.tail())
            raise OperationFailed(self.spec.application, self.spec.service, reason)

    async def _check_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.spec.check_interval)
            try:
                async with self._lock:
                    await self._check()
            except Exception as err:
                if not failing:
                    log.warning("checking %s failed, going on: %r", self.name, err)
                    log.debug("checking %s failed", self.name, exc_info=err)
                    failing = True
                continue
            if failing:
                log.info("checking %s works again", self.name)
                failing = False

    async def _check(self) -> None:
        status, message = status_of(await self._run("status"))
        if (status, message) == (self.state.status, self.state.message):
            return
        self.state = self.state.model_copy(
            update={"status": status, "message": message, "since": self._clock.now()}
        )
        if not self._retired:
            self._notify(self.state)

    async def _run(self, what: str) -> ScriptRun:
        argv = {
            "status": self.spec.status_command,
            "start": self.spec.start_command,
            "stop": self.spec.stop_command,
        }[what]
        return await self._run_script(what, argv, self.spec)


class ScriptProvider:
    """Script services run here, or — given `run` — elsewhere (an SSH target's, agent/ssh)."""

    name = "script"

    def __init__(
        self, host: str, clock: Clock, tg: asyncio.TaskGroup, run: RunScript | None = None
    ) -> None:
        self._host = host
        self._run = run or self._run_here
        self._clock = clock
        self._tg = tg
        self._services: dict[tuple[str, str], ScriptService] = {}
        self._listeners = Listeners()
        self._running: set[int] = set()  # pids (= process groups) of scripts under way
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._closed = False

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)

    def _notify(self, state: ServiceState) -> None:
        self._listeners(state)

    async def _run_here(self, what: str, argv: list[str], spec: DesiredService) -> ScriptRun:
        return await run_script(what, argv, spec, self._running)

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted = {(d.application, d.service): d for d in desired if d.provider == self.name}
        for key in [k for k in self._services if k not in wanted]:
            await self._services.pop(key).retire()  # forgotten, not stopped
        fresh: list[ScriptService] = []
        for key, spec in wanted.items():
            current = self._services.get(key)
            if current is not None and current.spec == spec:
                continue
            previous = None
            if current is not None:
                await current.retire()  # the commands or timings changed: check afresh
                previous = current.state
            lock = self._locks.setdefault(key, asyncio.Lock())
            service = ScriptService(
                self._host, spec, self._clock, self._notify, self._run, lock, previous
            )
            self._services[key] = service
            service.watch(self._tg)
            fresh.append(service)
        # Each at once: one slow script must not hold up the others.
        async with asyncio.TaskGroup() as group:
            for service in fresh:
                group.create_task(service.converge())

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        found = self._services.get((application, service))
        if found is None:
            raise UnknownService(application, service)
        if self._closed:
            raise OperationFailed(application, service, "the agent is shutting down")
        return await found.act(kind)

    def states(self) -> list[ServiceState]:
        return [s.state for s in self._services.values()]

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(s.retire() for s in self._services.values()))
        for pid in list(self._running):  # runs an action or an apply still has under way
            _kill_group(pid)
