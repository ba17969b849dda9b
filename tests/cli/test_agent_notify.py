"""`drover agent` tells systemd how it is, as a Type=notify service: the real binary, a real
nats-server, and a datagram socket of the test's own standing in for systemd's.

tests/agent/systemd/test_agent_unit.py runs the same under a real systemd.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.busauth import enroll_directly
from tests.cli.test_bad_input import DROVER


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: every message, in order."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self.seen: list[str] = []

    async def until(self, wanted: Callable[[str], bool], timeout: float = 20) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                message = (await loop.sock_recv(self.sock, 4096)).decode()
                self.seen.append(message)
                if wanted(message):
                    return message


@pytest.fixture
async def fake_systemd() -> AsyncIterator[FakeSystemd]:
    with (
        tempfile.TemporaryDirectory(prefix="sdn-") as folder,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        address = os.path.join(folder, "notify")
        sock.bind(address)
        sock.setblocking(False)
        yield FakeSystemd(sock, address)


def not_a_ping(message: str) -> bool:
    return not message.startswith("WATCHDOG=1")


async def test_ready_watchdog_reload_and_stopping_reach_the_service_manager(
    nats_server: EmbeddedNats, fake_systemd: FakeSystemd, tmp_path: Path
) -> None:
    await enroll_directly(nats_server, "h1", tmp_path / "state")
    settings = tmp_path / "agent.toml"
    settings.write_text(
        f'nats = "{nats_server.url}"\nheartbeat_interval = 10\nlog_level = "info"\n'
    )
    log = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env |= {"NOTIFY_SOCKET": fake_systemd.address, "WATCHDOG_USEC": "1000000"}
    with log.open("wb") as stderr:
        agent = await asyncio.create_subprocess_exec(
            DROVER,
            *("agent", "--config-file", str(settings), "--data-dir", str(tmp_path / "state")),
            *("--systemd", "off", "--host-id", "h1"),
            stdin=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    try:
        ready = await fake_systemd.until(lambda m: m.startswith("READY=1"))
        assert ready == "READY=1\nSTATUS=agent h1 running"
        assert "STATUS=connecting to NATS" in fake_systemd.seen
        # Before READY a ping extends the start timeout too; after it, it is only a ping.
        assert "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=1000000" in fake_systemd.seen
        await fake_systemd.until(lambda m: m == "WATCHDOG=1")
        await fake_systemd.until(lambda m: m == "WATCHDOG=1")

        # A reload: two keys applied at once, one that needs a restart.
        settings.write_text('nats = "nats://h:1"\nheartbeat_interval = 2\nlog_level = "debug"\n')
        agent.send_signal(signal.SIGHUP)
        assert (await fake_systemd.until(not_a_ping)).startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert await fake_systemd.until(not_a_ping) == (
            "READY=1\nSTATUS=agent h1 running; restart to apply nats"
        )

        # A bad file changes nothing and stops nothing.
        settings.write_text("log_level = \n")
        agent.send_signal(signal.SIGHUP)
        assert (await fake_systemd.until(not_a_ping)).startswith("RELOADING=1\n")
        assert await fake_systemd.until(not_a_ping) == (
            "READY=1\nSTATUS=agent h1 running; the last reload failed, see the log"
        )
        await fake_systemd.until(lambda m: m == "WATCHDOG=1")

        agent.send_signal(signal.SIGTERM)
        assert await fake_systemd.until(not_a_ping) == "STOPPING=1\nSTATUS=draining"
        assert await asyncio.wait_for(agent.wait(), 30) == 0
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    output = log.read_text()
    assert "reload: applied log_level 'INFO' → 'DEBUG', heartbeat_interval 10.0 → 2.0" in output
    assert "reload: nats changed; takes effect on restart" in output
    assert f"reload: {settings}:1:13: Invalid value; keeping the current settings" in output
    assert "agent h1 stopped" in output
    assert "Traceback" not in output
