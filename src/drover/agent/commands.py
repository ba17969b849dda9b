"""Runs one command of an application on this host, its output streaming as it goes.

- The argv exactly as the server rendered it: no shell; stdin is /dev/null; stdout and stderr go
  into one pipe, in the order the process wrote them.
- In a session of its own, so the command and what it starts are one process group. That
  group is what a timeout or an operator's abort stops (SIGTERM, then SIGKILL after
  `kill_grace`), and what is left of it when the command's own process exits is stopped the
  same way: a command is over when its process is. A child that leaves the group (`setsid()`,
  a daemon's double fork) escapes this and keeps running: a process group is not a cgroup
  (docs/reliability.md, Gaps).
- As `run_as` (user, or user:group) with that user's supplementary groups; never with the
  agent's own group, which for a root agent is root's.
- In `/`, with a clean environment (PATH, HOME, USER, LOGNAME, LANG, the command's `env` and
  DROVER_*), never the agent's own, which may hold its credentials. The `env` values that are
  secret references are resolved here, as it starts (ops/secrets.py), and masked in the
  output sent to the server.

A command that cannot start (no such program, no such user, not permitted) fails with the reason;
it is not an error of the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drover.agent.abort import Abort
from drover.agent.lifeline import die_with_the_agent
from drover.agent.output import OutputPublisher
from drover.bus.connection import Bus
from drover.bus.messages import CommandRun
from drover.model.command import param_environment
from drover.ops.cancels import bounded
from drover.ops.secrets import Redactor, Secrets, SecretUnavailable, installed

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # after SIGTERM, before SIGKILL
LINGER = 1.0  # after the process exits, for the rest of its output
PUBLISH_BOUND = 30.0  # after the process exits, for its output to reach the bus
EXIT_POLL = 0.05
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CannotRun(Exception):
    """The command cannot be started here; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Whom a command runs as: None for the agent's own ids."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    name: str = ""
    home: str = "/"

    def spawn_options(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": self.groups}


@dataclass(frozen=True)
class CommandReport:
    exit_code: int | None  # None: it never started
    timed_out: bool
    note: str  # what the agent adds: why it failed to start, a timeout, an abort, a signal
    output_tail: str
    chunks: int  # output chunks stored by the bus
    aborted: bool = False  # an operator's abort stopped it (or kept it from starting)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.aborted


@dataclass(frozen=True)
class Ended:
    """How a run ended, as `_execute` tells `run` (and a runner for elsewhere, agent/ssh)."""

    exit_code: int | None
    note: str
    timed_out: bool = False
    aborted: bool = False


class CommandRunner:
    def __init__(
        self,
        bus: Bus,
        host: str,
        *,
        kill_grace: float = KILL_GRACE,
        publish_bound: float = PUBLISH_BOUND,
        secrets: Secrets | None = None,
    ) -> None:
        self._bus = bus
        self._host = host
        self._secrets = secrets or installed()
        self._kill_grace = kill_grace
        self._publish_bound = publish_bound

    async def run(
        self, action_id: str, application: str, run: CommandRun, abort: Abort | None = None
    ) -> CommandReport:
        """Run it to its end: its exit, its timeout, or `abort` (looked at until it exits)."""
        output = OutputPublisher(self._bus, self._host, action_id, run.output_limit)
        redactor = Redactor()
        async with asyncio.TaskGroup() as tg:
            sending = tg.create_task(output.run())
            try:
                ended = await self._start(
                    action_id, application, run, redactor, output.feed, abort or Abort()
                )
            finally:
                output.feed(redactor.flush())
                output.close()
                await _finish_within(sending, self._publish_bound)
        notes = [ended.note] if ended.note else []
        if output.unsent:
            notes.append(
                f"{output.unsent} bytes of output did not reach the bus within "
                f"{self._publish_bound:g}s and are lost"
            )
        if output.dropped:
            notes.append(f"output truncated at {run.output_limit} bytes")
        # The tail goes into the result as text: NUL, valid UTF-8 but not storable as text in
        # PostgreSQL, is replaced like any byte that is not text.
        tail = output.tail.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        return CommandReport(
            ended.exit_code,
            ended.timed_out,
            "; ".join(notes),
            tail,
            output.sent,
            aborted=ended.aborted,
        )

    async def _start(
        self,
        action_id: str,
        application: str,
        run: CommandRun,
        redactor: Redactor,
        sink: Callable[[bytes], None],
        abort: Abort,
    ) -> Ended:
        """Unless aborted already, resolve its secrets (masked in its output from here on)
        and execute it."""
        if abort.requested:  # it came between the ledger's begin and here
            return Ended(None, f"aborted by {abort.by} before it started", aborted=True)
        try:
            secret = await self._secrets.environment(run.secrets)
        except SecretUnavailable as err:
            return Ended(None, f"cannot run {run.argv[0]}: {err}")
        redactor.add(secret.values())
        try:
            return await self._execute(
                action_id, application, run, secret, redactor.feeding(sink), abort
            )
        finally:
            del secret  # held no longer than the start takes

    async def _execute(
        self,
        action_id: str,
        application: str,
        run: CommandRun,
        secret: dict[str, str],
        sink: Callable[[bytes], None],
        abort: Abort,
    ) -> Ended:
        """Run it here, with its resolved `secret` variables, its output to `sink`."""
        try:
            identity = identity_of(run.run_as)
        except CannotRun as err:
            return Ended(None, str(err))
        env = environment(action_id, application, run, identity, self._host, secret)
        try:
            process = await _spawn(run, identity, env)
        except CannotRun as err:
            return Ended(None, str(err))
        finally:
            del env
        log.info("action %s: %s started (pid %d)", action_id, run.name, process.pid)
        return await self._supervise(process, run.timeout_s, sink, abort)

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        timeout: float,
        sink: Callable[[bytes], None],
        abort: Abort,
    ) -> Ended:
        assert process.stdout is not None
        reader = asyncio.create_task(_pump(process.stdout, sink))
        try:
            timed_out, aborted, left = await self._until_done(process, reader, timeout, abort)
        except asyncio.CancelledError:
            # The agent is stopping and gave up waiting: the command must not outlive this run,
            # which its ledger will report `interrupted`.
            _signal_group(process.pid, signal.SIGKILL)
            raise
        finally:
            await _let_go(process, reader)
        notes = []
        if timed_out:
            notes.append(f"timed out after {timeout:g}s: its process group was stopped")
        elif aborted:
            notes.append(f"aborted by {abort.by}: its process group was stopped")
        elif left:
            notes.append("processes it left running were stopped")
        try:
            code = await bounded(_exited(process), self._kill_grace)
        except TimeoutError:  # even SIGKILL did not end it (stuck in the kernel)
            notes.append("did not exit after SIGKILL")
            return Ended(128 + signal.SIGKILL, "; ".join(notes), timed_out, aborted)
        if code < 0:
            notes.append(f"killed by {signal.Signals(-code).name}")
            code = 128 - code  # as a shell reports it
        return Ended(code, "; ".join(notes), timed_out, aborted)

    async def _until_done(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.Task[None],
        timeout: float,
        abort: Abort,
    ) -> tuple[bool, bool, bool]:
        """Wait for the process to exit (and its output to end), at most `timeout` and only
        until an abort; then stop what is left of its group. Whether it timed out, whether an
        abort stopped it, and whether anything was left."""
        timed_out = aborted = False
        try:
            async with asyncio.timeout(timeout):
                aborted = not await _exited_unless(process, abort)
                if not aborted:
                    await asyncio.wait({reader}, timeout=LINGER)
        except TimeoutError:
            timed_out = True
        left = await stop_group(process.pid, self._kill_grace)
        await asyncio.wait({reader}, timeout=self._kill_grace)
        return timed_out, aborted, left


async def _let_go(process: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
    """Stop reading its output. A reader still going means something outside the group holds
    the pipe open: let go of the pipe rather than wait for it."""
    if not reader.done():
        reader.cancel()
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
    await asyncio.wait({reader})
    if not reader.cancelled() and (error := reader.exception()) is not None:
        log.warning("reading a command's output failed: %r", error)


async def _spawn(
    run: CommandRun, identity: Identity, env: dict[str, str]
) -> asyncio.subprocess.Process:
    program = run.argv[0]
    if identity.uid is not None and os.geteuid() not in (0, identity.uid):
        raise CannotRun(f"cannot run as {run.run_as}: the agent is not root")
    try:
        return await asyncio.create_subprocess_exec(
            *run.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=env,
            preexec_fn=die_with_the_agent,
            **identity.spawn_options(),
        )
    except FileNotFoundError as err:
        raise CannotRun(f"cannot run {program}: no such file or directory") from err
    except PermissionError as err:
        who = f" as {run.run_as}" if run.run_as else ""
        raise CannotRun(f"cannot run {program}{who}: permission denied") from err
    except OSError as err:
        raise CannotRun(f"cannot run {program}: {err.strerror or err}") from err


async def _pump(stream: asyncio.StreamReader, sink: Callable[[bytes], None]) -> None:
    while data := await stream.read(65536):
        sink(data)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """Its exit status, as soon as it has exited. (`Process.wait` would also wait for every
    holder of its pipe to close it, such as a child it left running.)"""
    while process.returncode is None:  # noqa: ASYNC110 - asyncio offers no event for exit alone
        await asyncio.sleep(EXIT_POLL)
    return process.returncode


async def _exited_unless(process: asyncio.subprocess.Process, abort: Abort) -> bool:
    """True once the process has exited; False as soon as an abort comes first."""
    while process.returncode is None:  # polled, as `_exited` says why
        if abort.requested:
            return False
        await asyncio.sleep(EXIT_POLL)
    return True


async def stop_group(pgid: int, grace: float) -> bool:
    """SIGTERM to the process group, SIGKILL to what is left of it after `grace`; False if the
    group was already empty."""
    if not _signal_group(pgid, signal.SIGTERM):
        return False
    loop = asyncio.get_running_loop()
    end = loop.time() + grace
    while loop.time() < end:
        await asyncio.sleep(EXIT_POLL)
        if not _signal_group(pgid, 0):
            return True
    _signal_group(pgid, signal.SIGKILL)
    return True


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its ids: it is not ours to stop
        return True
    return True


async def _finish_within(task: asyncio.Task[None], bound: float) -> None:
    """Let the task finish for `bound` seconds, then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=bound)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def identity_of(run_as: str | None) -> Identity:
    """The ids of `user` or `user:group` (names or numbers) on this host. Raises CannotRun."""
    if run_as is None:
        return Identity()
    user, _, group = run_as.partition(":")
    entry = _user_entry(user)
    if entry is None:
        if not user.isdigit():
            raise CannotRun(f"cannot run as {run_as}: no user {user!r} on this host")
        uid, gid, name, home = int(user), int(user), user, "/"
    else:
        uid, gid, name, home = entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir
    if group:
        gid = _group_id(group, run_as)
    groups = os.getgrouplist(name, gid) if entry is not None else [gid]
    return Identity(uid, gid, groups, name, home or "/")


def _user_entry(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        return None


def _group_id(group: str, run_as: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as err:
        raise CannotRun(f"cannot run as {run_as}: no group {group!r} on this host") from err


def environment(
    action_id: str,
    application: str,
    run: CommandRun,
    identity: Identity,
    host: str,
    secret: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The command's whole environment: the basics, its `env` (which may set PATH or LANG),
    its resolved `secret` values, and the DROVER_* variables, which it cannot set."""
    if identity.uid is None:
        me = _user_entry(str(os.geteuid()))
        name, home = (me.pw_name, me.pw_dir) if me else (str(os.geteuid()), "/")
    else:
        name, home = identity.name, identity.home
    return {
        "PATH": PATH,
        "HOME": home,
        "USER": name,
        "LOGNAME": name,
        "LANG": "C.UTF-8",
        **run.env,
        **(secret or {}),
        "DROVER_ACTION_ID": action_id,
        # The host's id in the fleet, which need not be its host name.
        "DROVER_HOST": host,
        "DROVER_APPLICATION": application,
        "DROVER_COMMAND": run.name,
        **param_environment(run.params),
    }
