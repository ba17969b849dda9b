"""A real systemd, booted as PID 1 of a new PID+mount namespace (see TESTING.md).

It gets a private tmpfs on /tmp and /run and boots a small target of our own that only wants
D-Bus, not multi-user.target, so none of the machine's installed services start. Its system bus
is reachable from outside at /proc/<pid>/root/run/dbus/system_bus_socket; unit files go into
/proc/<pid>/root/run/systemd/system. Killing its PID 1 ends everything inside.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

SYSTEMD = Path("/lib/systemd/systemd")
TARGET = "drover-test.target"
UNSHARE = ["unshare", "--fork", "--pid", "--mount", "--mount-proc", "--propagation", "private"]
# A checkout under /tmp (CI clones land there) must stay visible inside, or units that run the
# venv's `drover` cannot start: it is held on a bind mount while /tmp is replaced.
_CHECKOUT = Path(__file__).resolve().parents[1]
KEEP = str(_CHECKOUT) if _CHECKOUT.is_relative_to("/tmp") else ""
BOOT = f"""
set -e
keep="{KEEP}"
if [ -n "$keep" ]; then
    hold=$(mktemp -d /var/tmp/drover-keep-XXXXXX)
    mount --bind "$keep" "$hold"
fi
mount -t tmpfs tmpfs /tmp   # systemd-tmpfiles would otherwise empty the host's /tmp
if [ -n "$keep" ]; then
    mkdir -p "$keep"
    mount --bind "$hold" "$keep"
    umount "$hold"
    rmdir "$hold"
fi
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
printf '[Unit]\\nDescription=drover test\\nWants=dbus.socket dbus.service\\n' \\
    > /run/systemd/system/{TARGET}
export container=drover-test
exec {SYSTEMD} --system --unit={TARGET}
"""


class SystemdUnavailable(Exception):
    """systemd cannot be booted here; the message says why."""


class SystemdNamespace:
    def __init__(self, unshare: subprocess.Popen[bytes], pid: int, log: Path) -> None:
        self._unshare = unshare
        self.pid = pid  # systemd's pid, as seen from outside the namespace
        self.log = log

    @classmethod
    def boot(cls, timeout: float = 20.0) -> SystemdNamespace:
        """Boot and wait until the system bus answers and systemd reports it is up."""
        _check_prerequisites()
        log = Path(tempfile.mkstemp(prefix="drover-systemd-", suffix=".log")[1])
        with log.open("wb") as out:
            unshare = subprocess.Popen(
                [*UNSHARE, "/bin/bash", "-c", BOOT],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            pid = _wait_for_child(unshare, log, deadline)
            namespace = cls(unshare, pid, log)
        except BaseException:
            _kill_and_wait(unshare, None)
            log.unlink(missing_ok=True)
            raise
        try:
            namespace._wait_until_up(deadline)
        except BaseException:
            namespace.stop()
            raise
        return namespace

    @property
    def root(self) -> Path:
        return Path(f"/proc/{self.pid}/root")

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.root}/run/dbus/system_bus_socket"

    def write_units(self, units: Mapping[str, str]) -> None:
        """Write unit files (name → text) into the namespace's /run/systemd/system, then reload."""
        for name, text in units.items():
            (self.root / "run/systemd/system" / name).write_text(text)
        self.systemctl("daemon-reload")

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._nsenter("systemctl", *args), capture_output=True, text=True, check=check
        )

    async def systemctl_async(self, *args: str) -> str:
        """Run systemctl inside without blocking the event loop; return its stdout."""
        proc = await asyncio.create_subprocess_exec(
            *self._nsenter("systemctl", *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode != 0:
            raise AssertionError(f"systemctl {' '.join(args)}: {proc.returncode} {err.decode()}")
        return out.decode()

    def stop(self) -> None:
        """Kill PID 1 (which ends everything inside) and wait for the namespace to go."""
        _kill_and_wait(self._unshare, self.pid)
        self.log.unlink(missing_ok=True)

    def _nsenter(self, *command: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-p", "-m", *command]

    def _wait_until_up(self, deadline: float) -> None:
        bus = self.root / "run/dbus/system_bus_socket"
        state = "no system bus yet"
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                raise SystemdUnavailable(f"systemd exited: {_tail(self.log)}")
            if _answers(bus):
                state = self.systemctl("is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.05)
        raise SystemdUnavailable(f"systemd not up in time ({state}): {_tail(self.log)}")


def boot_or_skip() -> SystemdNamespace:
    """Boot one, or skip the test saying why; in CI (CI=true) fail instead of skipping."""
    try:
        return SystemdNamespace.boot()
    except SystemdUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"systemd in a namespace is required in CI: {err}")
        pytest.skip(f"cannot boot systemd in a namespace: {err}")


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise SystemdUnavailable("needs root (unshare of PID and mount namespaces)")
    if not SYSTEMD.exists():
        raise SystemdUnavailable(f"no {SYSTEMD}")
    for tool in ("unshare", "nsenter", "dbus-daemon"):
        if shutil.which(tool) is None:
            raise SystemdUnavailable(f"no {tool} on PATH")


def _wait_for_child(unshare: subprocess.Popen[bytes], log: Path, deadline: float) -> int:
    """The pid of unshare's child once it has become systemd."""
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            raise SystemdUnavailable(f"unshare exited with {unshare.returncode}: {_tail(log)}")
        try:
            children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text()
            if children.split():
                pid = int(children.split()[0])
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)
    raise SystemdUnavailable(f"systemd did not start in time: {_tail(log)}")


def _kill_and_wait(unshare: subprocess.Popen[bytes], pid: int | None) -> None:
    """Kill systemd (PID 1 inside: everything else goes with it), else unshare; never a pid
    that may already have been reused."""
    if unshare.poll() is not None:
        return  # gone already, and with it the namespace
    try:
        os.kill(pid if pid is not None else unshare.pid, signal.SIGKILL)
    except ProcessLookupError:
        os.kill(unshare.pid, signal.SIGKILL)  # still ours: not yet reaped
    unshare.wait(timeout=15)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:].strip() or "(no output)"
    except FileNotFoundError:
        return "(no log)"
