"""A real OpenSSH sshd for the tests of agentless targets (agent/ssh): Debian's openssh-server,
on a free loopback port, with a host key and a client key of its own and this user's login."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import free_port
from drover.bus.messages import SshTarget

SSHD = Path("/usr/sbin/sshd")


class SshdUnavailable(Exception):
    """sshd cannot be started here; the message says why."""


@dataclass
class Sshd:
    root: Path
    port: int
    user: str
    host_key: str  # the public host key, "ssh-ed25519 AAAA…"
    client_key: Path  # the private key the server lets in
    process: subprocess.Popen[bytes]

    enter: tuple[str, ...] = ()

    @classmethod
    def start(
        cls,
        root: Path,
        max_sessions: int = 10,
        enter: Sequence[str] = (),
        privsep: Path = Path("/run/sshd"),
        passwords: bool = False,
    ) -> Sshd:
        """`enter`: a command prefix that runs it in other namespaces (a systemd's, with
        `nsenter`), whose privilege separation directory is `privsep` as seen from here; `root`
        must then be seen alike from both sides."""
        if not SSHD.exists() or shutil.which("ssh-keygen") is None:
            raise SshdUnavailable("no /usr/sbin/sshd (Debian package openssh-server)")
        root.mkdir(parents=True, exist_ok=True)
        user = getpass.getuser()
        for name in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                check=True,
                capture_output=True,
            )
        (root / "authorized_keys").write_text((root / "client.pub").read_text())
        (root / "authorized_keys").chmod(0o600)
        port = free_port()
        config = root / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\n"
            f"Port {port}\n"
            f"HostKey {root / 'host'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
            f"PidFile {root / 'sshd.pid'}\n"
            "UsePAM no\n"
            "StrictModes no\n"  # the test's own directories
            f"PasswordAuthentication {'yes' if passwords else 'no'}\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            f"MaxSessions {max_sessions}\n"
            "MaxStartups 100\n"
            "LogLevel VERBOSE\n"
        )
        privsep.mkdir(exist_ok=True)
        with (root / "sshd.log").open("wb") as log:  # sshd has its own copy
            process = subprocess.Popen(
                [*enter, str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SshdUnavailable(f"sshd exited: {(root / 'sshd.log').read_text()[-800:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            process.kill()
            raise SshdUnavailable("sshd did not listen within 10 s")
        host_key = " ".join((root / "host.pub").read_text().split()[:2])
        return cls(root, port, user, host_key, root / "client", process, tuple(enter))

    def target(self, host: str, **fields: object) -> SshTarget:
        """A target (as the config gives it) on this sshd, its key a file: secret."""
        values: dict[str, object] = {
            "host": host,
            "address": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "host_key": self.host_key,
            "key": f"file:{self.client_key}",
            "connect_timeout": 5.0,
        } | fields
        return SshTarget.model_validate(values)

    def connections(self) -> int:
        """Client connections established now (from sshd's side)."""
        out = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( sport = :{self.port} )"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return len([line for line in out.splitlines() if line.strip()])

    def stop(self) -> None:
        if self.enter:  # `process` is nsenter: sshd is its child, in the other namespaces
            config = self.root / "sshd_config"
            subprocess.run(["pkill", "-f", f"sshd -D -e -f {config}"], check=False)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_or_skip(root: Path, **options: Any) -> Sshd:
    """Start one (Sshd.start's `options`), or skip the test saying why; in CI (CI=true) fail
    instead of skipping."""
    try:
        return Sshd.start(root, **options)
    except SshdUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"sshd is needed in CI: {err}")
        pytest.skip(str(err))
