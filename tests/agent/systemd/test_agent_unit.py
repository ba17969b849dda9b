"""The agent as systemd runs it: the shipped unit's [Service] section, Type=notify, in a real
systemd booted in a namespace (tests/systemd_namespace.py).

The namespace has its own /tmp and /run but shares the rest of the filesystem and the network,
so the agent's files live under /var/tmp and it reaches a nats-server on 127.0.0.1 started here.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drover.bus.embedded import BusSecurity, EmbeddedNats, free_port
from tests.busauth import make_consumers, write_enrollment
from tests.conftest import eventually
from tests.systemd_namespace import SystemdNamespace

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

UNIT = "drover-agent.service"
SHIPPED = Path(__file__).parents[3] / "packaging" / "systemd" / UNIT
DROVER = Path(sys.executable).parent / "drover"
# Set by the test: where the agent is and what it talks to, and shorter timeouts.
REPLACED = ("ExecStart", "StateDirectory", "EnvironmentFile", "WatchdogSec", "TimeoutStartSec")
WATCHDOG_SEC = 2
TIMEOUT_START_SEC = 3
PROPERTIES = "ActiveState,SubState,StatusText,MainPID,NRestarts,Result,ExecMainStatus"


def shipped_service_section() -> list[str]:
    """The [Service] lines of packaging/systemd/drover-agent.service, less those we replace."""
    section = SHIPPED.read_text().split("[Service]\n", 1)[1].split("\n[", 1)[0]
    lines = [line for line in section.splitlines() if line and not line.startswith("#")]
    assert not [line for line in lines if line.endswith("\\")], "no continued lines, please"
    return [line for line in lines if line.split("=", 1)[0] not in REPLACED]


@pytest.fixture
def work() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="drover-unit-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Installed:
    port: int  # where the agent is told NATS is
    security: BusSecurity  # what that nats-server is to trust; the agent is enrolled with it


@pytest.fixture
def installed(systemd: SystemdNamespace, work: Path) -> Iterator[Installed]:
    """The unit, installed (not started) in the namespace, its host enrolled."""
    port = free_port()
    security = BusSecurity.local(work / "bus")
    write_enrollment(security, "nsagent", work / "state", f"tls://127.0.0.1:{port}")
    (work / "agent.toml").write_text("heartbeat_interval = 10\n")
    command = (
        f"{DROVER} agent --data-dir {work}/state "
        f"--systemd off --host-id nsagent --config-file {work}/agent.toml"
    )
    service = [
        *shipped_service_section(),
        f"ExecStart={command}",
        f"WatchdogSec={WATCHDOG_SEC}",
        f"TimeoutStartSec={TIMEOUT_START_SEC}",
        f"StandardOutput=append:{work}/agent.log",
        f"StandardError=append:{work}/agent.log",
    ]
    text = "[Unit]\nDescription=drover agent under test\n\n[Service]\n" + "\n".join(service)
    systemd.write_units({UNIT: text + "\n"})
    try:
        yield Installed(port, security)
    finally:
        systemd.systemctl("stop", UNIT, check=False)
        systemd.systemctl("reset-failed", UNIT, check=False)
        (systemd.root / "run/systemd/system" / UNIT).unlink(missing_ok=True)
        systemd.systemctl("daemon-reload")


async def show(systemd: SystemdNamespace) -> dict[str, str]:
    out = await systemd.systemctl_async("show", "-p", PROPERTIES, UNIT)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


async def test_the_agent_unit_is_active_once_ready_watched_reloaded_and_stopped_cleanly(
    systemd: SystemdNamespace, installed: Installed, work: Path, tmp_path: Path
) -> None:
    log = work / "agent.log"
    await systemd.systemctl_async("start", "--no-block", UNIT)

    async def connecting() -> bool:
        now = await show(systemd)
        return (now["ActiveState"], now["StatusText"]) == ("activating", "connecting to NATS")

    await eventually(connecting, timeout=20)
    first = await show(systemd)
    # No NATS yet: not ready, so not active. Its pings extend the start past TimeoutStartSec.
    await asyncio.sleep(TIMEOUT_START_SEC + WATCHDOG_SEC)
    waiting = await show(systemd)
    assert (waiting["ActiveState"], waiting["SubState"]) == ("activating", "start")
    assert (waiting["MainPID"], waiting["NRestarts"]) == (first["MainPID"], "0")

    nats = EmbeddedNats(tmp_path / "nats", port=installed.port, security=installed.security)
    await nats.start()
    try:
        await make_consumers(nats, "nsagent")

        async def running() -> dict[str, str] | None:
            now = await show(systemd)
            return now if (now["ActiveState"], now["SubState"]) == ("active", "running") else None

        await eventually(running, timeout=30, interval=0.2)  # the first connect backs off
        ready = await show(systemd)
        assert ready["StatusText"] == "agent nsagent running"
        assert ready["MainPID"] == first["MainPID"]

        # The watchdog (2 s) does not fire while the agent makes progress.
        await asyncio.sleep(2.5 * WATCHDOG_SEC)
        watched = await show(systemd)
        assert watched == ready, "restarted by the watchdog?"

        # ExecReload sends SIGHUP: the file is read again, the agent keeps running.
        (work / "agent.toml").write_text("heartbeat_interval = 2\n")
        await systemd.systemctl_async("reload", UNIT)
        await eventually(
            lambda: "reload: applied heartbeat_interval 10.0 → 2.0" in log.read_text(), 10
        )
        await eventually(running, timeout=10)
        assert (await show(systemd))["MainPID"] == first["MainPID"]

        # Stop: SIGTERM to the agent only; it says STOPPING, drains and exits 0.
        await asyncio.wait_for(systemd.systemctl_async("stop", UNIT), 60)
        stopped = await show(systemd)
    finally:
        await nats.stop()
    assert {k: stopped[k] for k in ("ActiveState", "Result", "ExecMainStatus", "NRestarts")} == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainStatus": "0",
        "NRestarts": "0",
    }
    output = log.read_text()
    assert "SIGTERM: draining" in output
    assert "agent nsagent stopped" in output
    assert "Traceback" not in output
