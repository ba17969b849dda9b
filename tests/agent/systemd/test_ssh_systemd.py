"""Systemd units of an SSH target (agent/ssh/providers.py), against a real systemd booted in a
namespace with a real sshd running inside it: what `systemctl show` says over SSH, mapped as the
local provider maps it; start, stop and restart; a failed start and a unit not there."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drover.agent.providers.base import OperationFailed
from drover.agent.ssh.connections import SshPool
from drover.agent.ssh.providers import SshSystemdProvider
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from tests.conftest import eventually
from tests.sshd import Sshd, start_or_skip
from tests.systemd_namespace import SystemdNamespace

pytestmark = [pytest.mark.ssh, pytest.mark.systemd]

_numbers = itertools.count(1)


@pytest.fixture
def sshd_inside(systemd: SystemdNamespace) -> Iterator[Sshd]:
    """An sshd in the namespace's PID and mount namespaces: its sessions' systemctl talks to
    that systemd. Its files in /var/tmp, which both sides see alike."""
    root = Path(tempfile.mkdtemp(prefix="drover-sshd-", dir="/var/tmp"))
    enter = ["nsenter", "-t", str(systemd.pid), "-p", "-m"]
    server = start_or_skip(root, enter=enter, privsep=systemd.root / "run/sshd")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def provided(
    systemd: SystemdNamespace, sshd_inside: Sshd
) -> AsyncIterator[tuple[SshSystemdProvider, list[ServiceState], str]]:
    prefix = f"ssht{next(_numbers)}"
    systemd.write_units(
        {
            f"{prefix}-web.service": "[Service]\nExecStart=/bin/sleep infinity\n",
            f"{prefix}-bad.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        }
    )
    pool = SshPool(1)
    seen: list[ServiceState] = []
    try:
        async with asyncio.TaskGroup() as tg:
            target = sshd_inside.target("nas-1", check_interval=1.0)
            provider = SshSystemdProvider("nas-1", target, pool, SystemClock(), tg)
            provider.subscribe(seen.append)
            try:
                yield provider, seen, prefix
            finally:
                await provider.close()
    finally:
        await pool.close()
        systemd.systemctl("stop", f"{prefix}-*.service", check=False)


def unit(prefix: str, service: str, unit_name: str | None = None) -> DesiredService:
    return DesiredService(
        application="nas",
        service=service,
        provider="systemd",
        target=TargetStatus.RUNNING,
        unit=unit_name or f"{prefix}-{service}.service",
    )


def status_of(provider: SshSystemdProvider) -> dict[str, tuple[ServiceStatus, str]]:
    return {s.service: (s.status, s.message) for s in provider.states()}


async def test_units_over_ssh_are_read_started_restarted_and_stopped(
    systemd: SystemdNamespace, provided: tuple[SshSystemdProvider, list[ServiceState], str]
) -> None:
    provider, seen, prefix = provided
    await provider.apply(
        [unit(prefix, "web"), unit(prefix, "bad"), unit(prefix, "ghost", f"{prefix}-ghost.service")]
    )
    assert status_of(provider) == {
        "web": (ServiceStatus.STOPPED, ""),
        "bad": (ServiceStatus.STOPPED, ""),
        "ghost": (ServiceStatus.UNKNOWN, "no such unit on this host"),
    }

    said = await provider.act("nas", "web", ActionKind.START)
    assert said == "started (status: running)"
    web = f"{prefix}-web.service"
    first = systemd.systemctl("show", "-p", "MainPID", "--value", web).stdout.strip()
    assert first != "0"
    await provider.act("nas", "web", ActionKind.RESTART)
    second = systemd.systemctl("show", "-p", "MainPID", "--value", web).stdout.strip()
    assert second not in ("0", first)

    with pytest.raises(OperationFailed, match="systemctl start exited 1: Job for"):
        await provider.act("nas", "bad", ActionKind.START)
    assert status_of(provider)["bad"] == (ServiceStatus.FAILED, "result: exit-code")

    # A change made outside drover shows at the next check.
    systemd.systemctl("stop", web)
    await eventually(lambda: status_of(provider)["web"][0] is ServiceStatus.STOPPED, timeout=10)
    assert [s.status for s in seen if s.service == "web"][-2:] == [
        ServiceStatus.RUNNING,
        ServiceStatus.STOPPED,
    ]
