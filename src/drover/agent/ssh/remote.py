"""One argv run on a target over SSH.

SSH carries a command line, which the target user's login shell reads: each argument is quoted
for a POSIX shell (the user's shell must be one: sh, bash, dash, ash), so the remote process gets
exactly the argv, as locally. Environment variables are not put on that command line, where the
target's process list would show them, nor asked for with SSH's `env` request, which sshd refuses
unless configured to accept them: the command line is

    [sudo -n --] sh -c 'echo "drover-pid $$" >&2; exec 2>&1; set -a; . /dev/stdin; set +a;
        exec "$@"' drover ARGV...

and the variables, as quoted `NAME='value'` lines, go to its standard input, which reaches its
end before the command starts (as /dev/null would). Standard error joins standard output on
the target, in one pipe, so the output comes in the order it was written. Before that, the
shell says its pid on standard error (`drover-pid N`): `exec` keeps it, so it is the command's.
What comes on standard error before it (sshd's "Could not chdir to home directory", sudo's
refusal) is output too.

A run that outlives its timeout, or is aborted, is stopped by that pid: SIGTERM to its process
group (or to it, if it leads none), SIGKILL KILL_GRACE seconds later, each from a session of its
own. SSH's own `signal` request cannot do it: sshd refuses it for a root login, and closing
the session ends a process only when it next writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncssh

from drover.agent.abort import Abort
from drover.ops.cancels import bounded

PID_MARK = "drover-pid "
PRELUDE = f'echo "{PID_MARK}$$" >&2; exec 2>&1; set -a; . /dev/stdin; set +a; exec "$@"'
ABORT_POLL = 0.1
READ_BYTES = 65536
KILL_GRACE = 5.0  # after SIGTERM, before SIGKILL
CLOSE_GRACE = 5.0  # after the end of its output, for its exit status


@dataclass(frozen=True)
class Finished:
    exit_code: int | None  # None: it did not end on its own (timeout, abort), or no status
    timed_out: bool = False
    aborted: bool = False
    signal: str | None = None  # the signal that ended it, as the target reported it


def command_line(
    argv: Sequence[str], env: Mapping[str, str], sudo: bool = False, run_as: str | None = None
) -> str:
    """What the target's login shell is given to run `argv` with `env` coming on stdin: as
    the login user, as root through sudo, or as `run_as` (user or user:group) through sudo."""
    words = []
    if sudo or run_as:
        words = ["sudo", "-n"]
        if run_as:
            user, _, group = run_as.partition(":")
            words += ["-u", f"#{user}" if user.isdigit() else user]
            if group:
                words += ["-g", f"#{group}" if group.isdigit() else group]
        words.append("--")
    return shlex.join([*words, "sh", "-c", PRELUDE, "drover", *argv])


def environment_text(env: Mapping[str, str]) -> str:
    """`NAME='value'` lines that `. /dev/stdin` assigns as they are."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


async def run(
    connection: asyncssh.SSHClientConnection,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    sudo: bool = False,
    run_as: str | None = None,
    timeout: float,
    sink: Callable[[bytes], None],
    abort: Abort | None = None,
) -> Finished:
    """Run `argv` to its end, its timeout or `abort`; its output goes to `sink` as it comes.
    Raises asyncssh.Error or OSError when the session cannot be opened."""
    env = env or {}
    process: asyncssh.SSHClientProcess[bytes] = await connection.create_process(
        command_line(argv, env, sudo, run_as), encoding=None
    )
    pid: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    try:
        process.stdin.write(environment_text(env).encode())
        process.stdin.write_eof()
        reading = asyncio.gather(_pump(process.stdout, sink), _errors(process.stderr, sink, pid))
        try:
            timed_out = aborted = False
            try:
                async with asyncio.timeout(timeout):
                    aborted = not await _ended_unless(reading, abort)
            except TimeoutError:
                timed_out = True
            if timed_out or aborted:
                await _stop(connection, pid, reading, sudo or bool(run_as))
                return Finished(None, timed_out=timed_out, aborted=aborted)
            await reading
            completed = await bounded(process.wait(), CLOSE_GRACE)
        finally:
            reading.cancel()
    finally:
        process.close()
    return _finished(completed)


async def _pump(stream: asyncssh.SSHReader[bytes], sink: Callable[[bytes], None]) -> None:
    while data := await stream.read(READ_BYTES):
        sink(data)


async def _errors(
    stream: asyncssh.SSHReader[bytes],
    sink: Callable[[bytes], None],
    pid: asyncio.Future[int | None],
) -> None:
    """The pid the prelude says; what comes before it (sudo's refusal, sshd's complaint about
    a home directory) is output."""
    mark = PID_MARK.encode()
    while line := await stream.readline():
        said = line.rstrip(b"\n")
        if said.startswith(mark) and said[len(mark) :].isdigit():
            pid.set_result(int(said[len(mark) :]))
            break
        sink(line)
    if not pid.done():
        pid.set_result(None)
    await _pump(stream, sink)


async def _stop(
    connection: asyncssh.SSHClientConnection,
    pid: asyncio.Future[int | None],
    reading: asyncio.Future[Any],
    sudo: bool,
) -> None:
    """SIGTERM, then SIGKILL, to the run's process group (or process) until its output ends."""
    number = pid.result() if pid.done() else None
    if number is None:
        return  # it never started
    for name in ("TERM", "KILL"):
        with contextlib.suppress(OSError, asyncssh.Error, TimeoutError):
            await _signal(connection, number, name, sudo)
        done, _ = await asyncio.wait({reading}, timeout=KILL_GRACE)
        if done:
            return


async def _signal(
    connection: asyncssh.SSHClientConnection, pid: int, name: str, sudo: bool
) -> None:
    kill = f"kill -{name} -- -{pid} 2>/dev/null || kill -{name} {pid} 2>/dev/null"
    process = await connection.create_process(
        command_line(["sh", "-c", kill], {}, sudo), encoding=None
    )
    try:
        process.stdin.write_eof()
        await bounded(process.wait(), KILL_GRACE)
    finally:
        process.close()


async def _ended_unless(reading: asyncio.Future[Any], abort: Abort | None) -> bool:
    """True once the output has ended (the process has); False as soon as an abort comes."""
    while not reading.done():
        if abort is not None and abort.requested:
            return False
        await asyncio.wait({reading}, timeout=ABORT_POLL)
    return True


def _finished(completed: asyncssh.SSHCompletedProcess) -> Finished:
    """Its exit code, as a shell reports it: 128 + the signal's number if a signal ended it."""
    if completed.exit_signal:
        name = str(completed.exit_signal[0])
        try:
            number = signal.Signals[f"SIG{name}"].value
        except KeyError:
            return Finished(None, signal=name)
        return Finished(128 + number, signal=name)
    return Finished(completed.exit_status)
