"""Runs over SSH against a real sshd: the argv exactly, the environment on stdin, exit codes,
timeouts and aborts; connections bounded, host keys and credentials checked."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from drover.agent.abort import Abort
from drover.agent.ssh import remote
from drover.agent.ssh.connections import SshPool, SshUnavailable
from drover.bus.messages import SshTarget
from tests.conftest import eventually
from tests.sshd import Sshd

pytestmark = pytest.mark.ssh

Pools = Callable[..., SshPool]

ARGV_AND_ENV = (
    "import json, os, sys; "
    "print(json.dumps([sys.argv[1:], {k: v for k, v in os.environ.items() if k.startswith('T_')}]))"
)


async def output_of(
    pool: SshPool, target: SshTarget, argv: list[str], **options: object
) -> tuple[remote.Finished, bytes]:
    got = bytearray()
    async with pool.session(target) as connection:
        finished = await remote.run(connection, argv, sink=got.extend, **options)  # type: ignore[arg-type]
    return finished, bytes(got)


async def test_the_argv_arrives_exactly_and_the_environment_by_stdin_not_the_command_line(
    sshd: Sshd, pools: Pools
) -> None:
    awkward = ["two words", "'single'", '"double"', "$HOME", "`id`", "a\nb", "", "-n", "*"]
    env = {"T_SECRET": "it's $a `secret`\nwith two lines", "T_PLAIN": "x"}
    pool = pools(2)
    target = sshd.target("t1")
    finished, out = await output_of(
        pool, target, [sys.executable, "-c", ARGV_AND_ENV, *awkward], env=env, timeout=10
    )
    assert finished == remote.Finished(0)
    assert json.loads(out) == [awkward, env]
    assert "secret" not in remote.command_line(["x"], env)


async def test_exit_codes_and_output_in_the_order_written(sshd: Sshd, pools: Pools) -> None:
    pool = pools(1)
    target = sshd.target("t1")
    script = "echo out; echo err >&2; echo out again; exit 3"
    finished, out = await output_of(pool, target, ["sh", "-c", script], timeout=10)
    assert (finished.exit_code, out) == (3, b"out\nerr\nout again\n")
    finished, _ = await output_of(pool, target, ["sh", "-c", "kill -KILL $$"], timeout=10)
    assert (finished.exit_code, finished.signal) == (128 + 9, "KILL")
    finished, out = await output_of(pool, target, ["/nonexistent/program"], timeout=10)
    assert finished.exit_code == 127 and b"not found" in out


async def test_a_timeout_or_an_abort_ends_the_remote_process(
    sshd: Sshd, tmp_path: Path, pools: Pools
) -> None:
    pool = pools(1)
    target = sshd.target("t1")
    for case in ("timeout", "abort"):
        pid_file = tmp_path / f"{case}.pid"
        abort = Abort()
        argv = ["sh", "-c", f"echo $$ > {pid_file}; echo started; exec sleep 300"]
        running = asyncio.create_task(
            output_of(pool, target, argv, timeout=1 if case == "timeout" else 60, abort=abort)
        )
        await eventually(pid_file.exists, timeout=10)
        if case == "abort":
            abort.request("ops")
        finished, out = await asyncio.wait_for(running, 15)
        assert (finished.timed_out, finished.aborted) == (case == "timeout", case == "abort")
        assert out == b"started\n"
        pid = int(pid_file.read_text())
        await eventually(functools.partial(_gone, pid), timeout=10)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_many_targets_share_at_most_the_connections_allowed(sshd: Sshd, pools: Pools) -> None:
    pool = pools(2, idle=0.5)
    targets = [sshd.target(f"t{n}") for n in range(6)]
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(await asyncio.to_thread(sshd.connections))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(
        *(output_of(pool, t, ["sh", "-c", "sleep 0.3; echo done"], timeout=30) for t in targets)
    )
    watcher.cancel()
    assert [out for _, out in results] == [b"done\n"] * len(targets)
    assert pool.peak == 2 and pool.opened >= 3  # each target got one in turn, two at a time
    assert max(seen) <= 2, seen  # as sshd's side shows them
    # Several runs on one target share its connection.
    same = await asyncio.gather(
        *(output_of(pool, targets[0], ["echo", str(n)], timeout=10) for n in range(5))
    )
    assert sorted(out for _, out in same) == [f"{n}\n".encode() for n in range(5)]
    tidy = asyncio.create_task(pool.close_idle())
    await eventually(lambda: pool.open_count == 0, timeout=15)
    tidy.cancel()
    await eventually(lambda: sshd.connections() == 0, timeout=10)


async def test_a_wrong_host_key_bad_credentials_or_no_server_say_so(
    sshd: Sshd, tmp_path: Path, pools: Pools
) -> None:
    other = Sshd.start(tmp_path / "other")
    other.stop()
    pool = pools(2)
    cases = {
        "its host key is not the one the config gives": sshd.target("a", host_key=other.host_key),
        "permission denied": sshd.target("b", key=f"file:{other.client_key}"),
        "secret file:/nonexistent/key for key: no such file": sshd.target(
            "c", key="file:/nonexistent/key"
        ),
        "Connection refused": sshd.target("d", port=other.port),
    }
    for reason, target in cases.items():
        with pytest.raises(SshUnavailable) as caught:
            async with pool.session(target):
                pass
        where = f"{target.user}@127.0.0.1:{target.port}"
        assert str(caught.value).startswith(f"cannot connect to {where}: "), caught.value
        assert reason in str(caught.value)
    assert pool.open_count == 0
