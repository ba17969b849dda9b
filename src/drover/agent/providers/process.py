"""Supervised processes: services the agent runs itself, as children in their own session.

Each service runs in its own process group (so a stop reaches everything it forked), with its
output appended to `<log dir>/<app>.<service>.log`. A process that exits on its own is reported
`failed` with its exit code; bringing it back is the reconciler's job (agent/reconciler.py),
which does so with backoff and a limit, for every provider alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from drover.agent.errors import UnknownService
from drover.agent.lifeline import die_with_the_agent
from drover.agent.providers.base import (
    NOT_A_SERVICE_OPERATION,
    Listeners,
    OperationFailed,
    StateListener,
)
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.ops.secrets import SecretUnavailable, installed

log = logging.getLogger(__name__)


class SupervisedProcess:
    def __init__(
        self,
        host: str,
        spec: DesiredService,
        log_dir: Path,
        clock: Clock,
        tg: asyncio.TaskGroup,
        notify: StateListener,
    ) -> None:
        self.host = host
        self.spec = spec
        self.log_path = log_dir / f"{spec.application}.{spec.service}.log"
        self._clock = clock
        self._tg = tg
        self._notify = notify
        self._lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._started_once = False
        self.state = ServiceState(
            host=host,
            application=spec.application,
            service=spec.service,
            provider="process",
            status=ServiceStatus.STOPPED,
            since=clock.now(),
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> str:
        async with self._lock:
            return await self._start()

    async def stop(self) -> str:
        async with self._lock:
            return await self._stop()

    async def restart(self) -> str:
        async with self._lock:
            before = self.pid
            await self._stop()
            await self._start()
            return f"restarted (pid {before or '-'} → {self.pid})"

    async def _start(self) -> str:
        if self.pid is not None:
            return f"already running (pid {self.pid})"
        try:
            secret = await installed().environment(self.spec.secrets)
        except SecretUnavailable as err:
            self._set(ServiceStatus.FAILED, pid=None, message=f"cannot start: {err}")
            raise OperationFailed(self.spec.application, self.spec.service, str(err)) from err
        env = {**os.environ, **self.spec.env, **secret}
        del secret  # held no longer than the start takes
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *self.spec.command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=self.spec.cwd,
                    start_new_session=True,
                    preexec_fn=die_with_the_agent,
                )
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            # OSError: no such file, no permission; ValueError: a NUL byte or '=' in a name.
            self._set(ServiceStatus.FAILED, pid=None, message=f"cannot start: {err}")
            raise OperationFailed(self.spec.application, self.spec.service, str(err)) from err
        self._proc = proc
        if self._started_once:
            self.state = self.state.model_copy(update={"restarts": self.state.restarts + 1})
        self._started_once = True
        self._set(ServiceStatus.RUNNING, pid=proc.pid)
        self._tg.create_task(self._watch(proc))
        return f"started (pid {proc.pid})"

    async def _stop(self) -> str:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            self._set(ServiceStatus.STOPPED, pid=None, exit_code=self.state.exit_code)
            return "already stopped"
        self._proc = None  # from here on its exit is expected, not a crash
        self._set(ServiceStatus.STOPPING, pid=proc.pid)
        await _terminate(proc, self.spec.stop_timeout)
        self._set(ServiceStatus.STOPPED, pid=None, exit_code=proc.returncode)
        return f"stopped (pid {proc.pid}, exit {proc.returncode})"

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._proc is not proc:
            return  # stopped on purpose
        self._proc = None
        _kill_group(proc.pid)  # what it forked must not outlive it unsupervised
        self._set(ServiceStatus.FAILED, pid=None, exit_code=code, message=f"exited with {code}")
        log.warning("%s/%s exited with %s", self.spec.application, self.spec.service, code)

    def _set(
        self,
        status: ServiceStatus,
        *,
        pid: int | None,
        exit_code: int | None = None,
        message: str = "",
    ) -> None:
        since = self.state.since if status is self.state.status else self._clock.now()
        self.state = self.state.model_copy(
            update={
                "status": status,
                "since": since,
                "pid": pid,
                "exit_code": exit_code,
                "message": message,
            }
        )
        self._notify(self.state)


async def _terminate(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM the whole process group, then SIGKILL it if it has not gone within `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await bounded(proc.wait(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
    _kill_group(proc.pid)  # stragglers that ignored SIGTERM or were forked meanwhile


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class ProcessProvider:
    name = "process"

    def __init__(self, host: str, log_dir: Path, clock: Clock, tg: asyncio.TaskGroup) -> None:
        self._host = host
        self._log_dir = log_dir
        self._clock = clock
        self._tg = tg
        self._services: dict[tuple[str, str], SupervisedProcess] = {}
        self._listeners = Listeners()
        self._closed = False

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)

    def _notify(self, state: ServiceState) -> None:
        self._listeners(state)

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted = {(d.application, d.service): d for d in desired if d.provider == self.name}
        for key in [k for k in self._services if k not in wanted]:
            await self._services.pop(key).stop()
        for key, spec in wanted.items():
            current = self._services.get(key)
            if current is not None and current.spec != spec:
                await current.stop()  # the command or environment changed: start afresh
                current = None
            if current is None:
                current = SupervisedProcess(
                    self._host, spec, self._log_dir, self._clock, self._tg, self._notify
                )
                self._services[key] = current
                self._notify(current.state)
            await _to_target(current)

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        proc = self._services.get((application, service))
        if proc is None:
            raise UnknownService(application, service)
        if self._closed:
            raise OperationFailed(application, service, "the agent is shutting down")
        match kind:
            case ActionKind.START:
                return await proc.start()
            case ActionKind.STOP:
                return await proc.stop()
            case ActionKind.RESTART:
                return await proc.restart()
            case ActionKind.COMMAND | ActionKind.PING:
                raise OperationFailed(application, service, NOT_A_SERVICE_OPERATION)

    def states(self) -> list[ServiceState]:
        return [p.state for p in self._services.values()]

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(p.stop() for p in self._services.values()))


async def _to_target(proc: SupervisedProcess) -> None:
    try:
        if proc.spec.target is TargetStatus.RUNNING:
            await proc.start()
        else:
            await proc.stop()
    except OperationFailed as err:
        log.warning("%s", err)
