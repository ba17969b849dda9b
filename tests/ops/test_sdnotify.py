"""The notify protocol against a real AF_UNIX datagram socket, as systemd would bind it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drover.ops.sdnotify import Notifier, keep_watchdog


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket and its NOTIFY_SOCKET address: a path, or @name (abstract)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if request.param == "abstract":
            name = f"drover-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name)
            yield "@" + name, sock
            return
        # A short path of its own: a socket path must fit in 108 bytes, tmp_path may not.
        with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
            path = os.path.join(folder, "notify")
            sock.bind(path)
            yield path, sock


def waiting(sock: socket.socket) -> list[str]:
    """Every datagram already queued, without waiting."""
    found = []
    while True:
        try:
            found.append(sock.recv(4096, socket.MSG_DONTWAIT).decode())
        except BlockingIOError:
            return found


def test_each_message_is_one_datagram_of_key_value_lines(
    listener: tuple[str, socket.socket],
) -> None:
    address, sock = listener
    notifier = Notifier(address)
    assert notifier.ready("agent h1 running")
    assert notifier.status("two\nlines")
    assert notifier.stopping("draining")
    assert notifier.watchdog()
    assert waiting(sock) == [
        "READY=1\nSTATUS=agent h1 running",
        "STATUS=two lines",
        "STOPPING=1\nSTATUS=draining",
        "WATCHDOG=1",
    ]


def test_reloading_carries_the_monotonic_time_it_began(
    listener: tuple[str, socket.socket],
) -> None:
    address, sock = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(address).reloading()
    [message] = waiting(sock)
    first, second = message.split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.removeprefix("MONOTONIC_USEC=")) <= before + 10_000_000


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("x")


def test_the_environment_is_read_and_removed_so_children_do_not_inherit_it() -> None:
    environ = {
        "NOTIFY_SOCKET": "@sd",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": "4242",
        "PATH": "/bin",
    }
    notifier = Notifier.from_environ(environ, pid=4242)
    assert (notifier.address, notifier.watchdog_interval) == ("@sd", 30.0)
    assert environ == {"PATH": "/bin"}


@pytest.mark.parametrize(
    "watchdog",
    [
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},  # another process's watchdog
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {},
    ],
)
def test_a_watchdog_not_meant_for_this_process_is_not_ours(watchdog: dict[str, str]) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", **watchdog}, pid=4242)
    assert notifier.watchdog_interval is None


def test_an_address_that_is_neither_a_path_nor_abstract_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert "not a path or @name" in caplog.text


def test_a_socket_that_is_gone_is_logged_once_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def watchdog_notifier(address: str, interval: float, ready: bool = True) -> Notifier:
    notifier = Notifier.from_environ(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(int(interval * 1_000_000))}
    )
    notifier.ready_sent = ready  # as if READY=1 had gone out
    return notifier


async def idle() -> None:
    await asyncio.Event().wait()


async def test_the_watchdog_pings_every_half_interval_while_the_loops_are_alive(
    listener: tuple[str, socket.socket],
) -> None:
    address, sock = listener
    notifier = watchdog_notifier(address, 0.2)
    async with asyncio.TaskGroup() as tg:
        loop = tg.create_task(idle(), name="agent.report")
        pinging = tg.create_task(keep_watchdog(notifier, [loop]))
        await asyncio.sleep(0.55)  # pings at 0, 0.1, …, 0.5
        pinging.cancel()
        loop.cancel()
    pings = waiting(sock)
    assert 4 <= len(pings) <= 7, pings
    assert set(pings) == {"WATCHDOG=1"}


async def test_before_ready_each_ping_extends_the_start_timeout(
    listener: tuple[str, socket.socket],
) -> None:
    address, sock = listener
    notifier = watchdog_notifier(address, 0.4, ready=False)
    pinging = asyncio.create_task(keep_watchdog(notifier, []))
    await asyncio.sleep(0.05)
    notifier.ready()
    await asyncio.sleep(0.3)
    pinging.cancel()
    assert waiting(sock) == [
        "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=400000",
        "READY=1",
        "WATCHDOG=1",
    ]


async def test_no_ping_once_a_watched_loop_has_ended(
    listener: tuple[str, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    address, sock = listener
    notifier = watchdog_notifier(address, 0.2)

    async def ends() -> None:
        await asyncio.sleep(0.15)

    ending = asyncio.create_task(ends(), name="agent.heartbeat")
    pinging = asyncio.create_task(keep_watchdog(notifier, [ending]))
    await asyncio.sleep(0.12)
    assert waiting(sock) == ["WATCHDOG=1", "WATCHDOG=1"]  # at 0 and 0.1
    await asyncio.sleep(0.4)
    pinging.cancel()
    assert waiting(sock) == []
    assert "not pinging systemd: task agent.heartbeat ended" in caplog.text


async def test_a_cancelled_loop_is_no_reason_to_stop_pinging(
    listener: tuple[str, socket.socket],
) -> None:
    """While draining, the loops are cancelled on purpose; the drain has its own bound."""
    address, sock = listener
    notifier = watchdog_notifier(address, 0.2)
    cancelled = asyncio.create_task(idle())
    cancelled.cancel()
    pinging = asyncio.create_task(keep_watchdog(notifier, [cancelled]))
    await asyncio.sleep(0.25)
    pinging.cancel()
    assert len(waiting(sock)) >= 2


async def test_no_ping_when_the_event_loop_answered_late_and_pings_again_after(
    listener: tuple[str, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    address, sock = listener
    notifier = watchdog_notifier(address, 0.5)  # a ping every 0.25 s
    pinging = asyncio.create_task(keep_watchdog(notifier, []))
    await asyncio.sleep(0.05)
    assert waiting(sock) == ["WATCHDOG=1"]
    time.sleep(0.6)  # noqa: ASYNC251 - on purpose: blocks the event loop past the bound
    await asyncio.sleep(0.1)  # the late wake-up came and went: no ping
    assert waiting(sock) == []
    assert "not pinging systemd: the event loop answered" in caplog.text
    await asyncio.sleep(0.3)  # the next one is on time again
    pinging.cancel()
    assert waiting(sock) == ["WATCHDOG=1"]
    assert "progress again" in caplog.text


async def test_without_a_watchdog_the_task_ends_at_once() -> None:
    await asyncio.wait_for(keep_watchdog(Notifier("/run/x"), []), 1)
