"""The command runner with real processes and a real nats-server: what it runs, as whom, how it
stops, and that the output it streams adds up to what the process wrote."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.api import ConsumerConfig, DeliverPolicy

from drover.agent.abort import Abort
from drover.agent.commands import CannotRun, CommandRunner, environment, identity_of
from drover.agent.output import OutputPublisher, truncation_note, utf8_boundary
from drover.bus import subjects, topology
from drover.bus.connection import Bus
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import CommandRun, OutputChunk, decode
from drover.ops.counters import Counters
from tests.busauth import bus_settings
from tests.conftest import eventually


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    bus = Bus(bus_settings(nats_server, "test-runner"), Counters())
    await bus.connect()
    await topology.ensure(bus.js)
    yield bus
    await bus.close()


def command(*argv: str, timeout: float = 10, limit: int = 1 << 20, **kw: object) -> CommandRun:
    return CommandRun.model_validate(
        {"name": "job", "argv": list(argv), "timeout_s": timeout, "output_limit": limit, **kw}
    )


async def chunks(bus: Bus, action_id: str = "a1") -> list[OutputChunk]:
    """Every chunk the host published for the action, in stream order."""
    psub = await bus.js.pull_subscribe(
        subjects.output_subject("h1"),
        stream=subjects.OUTPUT_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: list[OutputChunk] = []
    try:
        while True:
            try:
                batch = await psub.fetch(100, timeout=0.5)
            except TimeoutError:
                break
            for msg in batch:
                found.append(decode(OutputChunk, msg.subject, msg.data))
                await msg.ack()
    finally:
        await psub.unsubscribe()
    return [c for c in found if c.action_id == action_id]


async def test_output_streams_in_order_and_adds_up_to_what_the_process_wrote(bus: Bus) -> None:
    script = (
        "import sys\n"
        "for n in range(3000): print(f'line {n}', file=sys.stderr if n % 2 else sys.stdout)"
    )
    report = await CommandRunner(bus, "h1").run("a1", "shop", command(sys.executable, "-c", script))
    assert (report.exit_code, report.timed_out, report.note) == (0, False, "")
    sent = await chunks(bus)
    assert [c.seq for c in sent] == list(range(1, report.chunks + 1))
    whole = b"".join(c.data for c in sent).decode()
    assert sorted(whole.splitlines()) == sorted(f"line {n}" for n in range(3000))
    assert report.output_tail == whole[-4096:]


async def test_output_past_the_limit_is_counted_and_said_not_sent(bus: Bus) -> None:
    run = command("sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x", limit=1000)
    report = await CommandRunner(bus, "h1").run("a1", "shop", run)
    assert report.note == "output truncated at 1000 bytes"
    assert b"".join(c.data for c in await chunks(bus)) == b"x" * 1000 + truncation_note(1000, 99000)


async def test_a_timeout_stops_the_process_group_with_sigterm_then_sigkill(
    bus: Bus, tmp_path: Path
) -> None:
    # The shell ignores SIGTERM, so only SIGKILL ends it; its child must not survive either.
    pids = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; echo started; wait"
    runner = CommandRunner(bus, "h1", kill_grace=0.5)
    began = time.monotonic()
    report = await runner.run("a1", "shop", command("sh", "-c", script, timeout=0.5))
    assert time.monotonic() - began < 5
    assert (report.exit_code, report.timed_out) == (137, True)
    assert report.note == ("timed out after 0.5s: its process group was stopped; killed by SIGKILL")
    assert report.output_tail == "started\n"
    for pid in (int(p) for p in pids.read_text().split()):
        assert _gone(pid)


async def test_an_abort_stops_the_process_group_with_sigterm_then_sigkill(
    bus: Bus, tmp_path: Path
) -> None:
    # The shell ignores SIGTERM, so only SIGKILL ends it; its child must not survive either.
    pids = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; echo started; wait"
    runner = CommandRunner(bus, "h1", kill_grace=0.5)
    abort = Abort()
    running = asyncio.create_task(
        runner.run("a1", "shop", command("sh", "-c", script, timeout=60), abort)
    )
    await eventually(lambda: pids.exists() and pids.read_text().strip())
    began = time.monotonic()
    abort.request("alice")
    report = await running
    assert time.monotonic() - began < 5
    assert (report.exit_code, report.timed_out, report.aborted) == (137, False, True)
    assert not report.succeeded
    assert report.note == "aborted by alice: its process group was stopped; killed by SIGKILL"
    assert report.output_tail == "started\n"
    for pid in (int(p) for p in pids.read_text().split()):
        assert _gone(pid)


async def test_an_abort_before_the_command_starts_keeps_it_from_starting(
    bus: Bus, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    abort = Abort()
    abort.request("bob")
    report = await CommandRunner(bus, "h1").run(
        "a1", "shop", command("sh", "-c", f"touch {marker}"), abort
    )
    assert (report.exit_code, report.aborted, report.note) == (
        None,
        True,
        "aborted by bob before it started",
    )
    assert not marker.exists()


async def test_an_abort_after_the_command_exited_changes_nothing(bus: Bus) -> None:
    abort = Abort()
    report = await CommandRunner(bus, "h1").run("a1", "shop", command("true"), abort)
    abort.request("carol")  # too late: it had ended
    assert (report.exit_code, report.aborted, report.succeeded) == (0, False, True)


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie (ended, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_what_the_command_leaves_running_is_stopped_when_it_exits(
    bus: Bus, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo done"
    report = await CommandRunner(bus, "h1").run("a1", "shop", command("sh", "-c", script))
    assert (report.exit_code, report.succeeded) == (0, True)
    assert report.note == "processes it left running were stopped"
    assert _gone(int(pidfile.read_text()))


@pytest.mark.parametrize(
    ("run", "why"),
    [
        (command("/nonexistent/tool"), "cannot run /nonexistent/tool: no such file or directory"),
        (
            command("true", run_as="no-such-user"),
            "cannot run as no-such-user: no user 'no-such-user' on this host",
        ),
        (
            command("true", run_as="nobody:no-such-group"),
            "cannot run as nobody:no-such-group: no group 'no-such-group' on this host",
        ),
    ],
)
async def test_a_command_that_cannot_start_fails_with_the_reason(
    bus: Bus, run: CommandRun, why: str
) -> None:
    report = await CommandRunner(bus, "h1").run("a1", "shop", run)
    assert (report.exit_code, report.succeeded, report.note, report.chunks) == (
        None,
        False,
        why,
        0,
    )


async def test_a_file_that_is_not_executable_fails_as_permission_denied(
    bus: Bus, tmp_path: Path
) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    report = await CommandRunner(bus, "h1").run("a1", "shop", command(str(script)))
    assert report.note == f"cannot run {script}: permission denied"


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user takes root")
async def test_run_as_takes_the_users_own_groups_never_the_agents(bus: Bus) -> None:
    identity = identity_of("nobody")
    assert (identity.uid, identity.gid, identity.groups) == (65534, 65534, [65534])
    report = await CommandRunner(bus, "h1").run(
        "a1", "shop", command("sh", "-c", "id -u; id -g; id -G", run_as="nobody")
    )
    assert report.output_tail == "65534\n65534\n65534\n"
    as_group = await CommandRunner(bus, "h1").run(
        "a2", "shop", command("id", "-gn", run_as="nobody:daemon")
    )
    assert as_group.output_tail == "daemon\n"


def test_the_environment_is_clean_and_says_what_runs() -> None:
    env = environment(
        "a1",
        "shop",
        command("true", params={"region": "eu", "dry": False}),
        identity_of(None),
        "h1",
    )
    assert set(env) == {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "DROVER_ACTION_ID",
        "DROVER_HOST",
        "DROVER_APPLICATION",
        "DROVER_COMMAND",
        "DROVER_PARAM_REGION",
        "DROVER_PARAM_DRY",
    }
    assert (env["DROVER_PARAM_DRY"], env["DROVER_COMMAND"], env["DROVER_HOST"]) == (
        "false",
        "job",
        "h1",
    )


def test_an_unknown_user_cannot_run_anything() -> None:
    with pytest.raises(CannotRun, match="no user 'nobody-at-all'"):
        identity_of("nobody-at-all")


async def test_chunks_wait_for_the_bus_and_go_once_it_is_back(
    nats_server: EmbeddedNats, bus: Bus
) -> None:
    publisher = OutputPublisher(bus, "h1", "a1", 1 << 20, flush_every=0.05)
    await nats_server.stop()
    publisher.feed(b"while the bus is away\n")
    import asyncio

    sending = asyncio.create_task(publisher.run())
    await asyncio.sleep(0.5)
    assert (publisher.sent, publisher.unsent) == (0, 22)
    await nats_server.start()
    publisher.close()
    await asyncio.wait_for(sending, 30)
    assert publisher.sent == 1
    assert [c.data for c in await chunks(bus)] == [b"while the bus is away\n"]


utf8_text = st.text(max_size=200).map(str.encode)


@given(utf8_text, st.integers(min_value=4, max_value=64))
def test_chunks_of_utf8_output_each_decode_on_their_own(data: bytes, size: int) -> None:
    pieces, rest = [], data
    while rest:
        cut = utf8_boundary(rest, min(size, len(rest)))
        pieces.append(rest[:cut])
        rest = rest[cut:]
    assert b"".join(pieces) == data
    for piece in pieces:
        piece.decode("utf-8")  # no piece ends (or starts) inside a character


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_a_cut_is_never_past_the_end_nor_more_than_three_bytes_before_it(
    data: bytes, end: int
) -> None:
    end = min(end, len(data))
    cut = utf8_boundary(data, end)
    assert end - 3 <= cut <= end
