"""A service whose provider this host lacks is reported, not dropped, and cannot be acted on."""

from __future__ import annotations

import sys
from pathlib import Path

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import fleet_of

CONFIG = {
    "apps.yaml": (
        "applications:\n"
        "  web:\n    hosts: [h1]\n    services:\n"
        "      nginx: {provider: systemd, unit: nginx.service}\n"
        "      app: {command: [sleep, '3600'], stop_timeout: 2}\n"
    ),
}


async def test_a_systemd_service_on_a_host_without_systemd_is_unknown_saying_why(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with fleet_of(nats_server, tmp_path, CONFIG) as fleet:
        await fleet.start_server()
        await fleet.start_agent("h1")  # the harness runs agents with systemd off

        async def nginx_reported() -> dict[str, object] | None:
            app = await fleet.get("/api/v1/applications/web")
            nginx = next(s for s in app["services"] if s["name"] == "nginx")
            if not nginx["hosts"]:  # h1 has not reported yet
                return None
            placed: dict[str, object] = nginx["hosts"][0]
            return placed if placed["status"] else None

        await eventually(nginx_reported)
        nginx = await nginx_reported()
        assert nginx is not None
        assert (nginx["status"], nginx["drift"]) == ("unknown", True)
        assert nginx["message"] == "provider systemd is not available on this host"

        action = await run_action(fleet, {"kind": "restart", "application": "web"})
        [host] = action["hosts"]
        assert host["outcome"] == "failed"
        assert "provider systemd is not available here" in host["output"]
        assert "web/app: restarted" in host["output"]  # the other service was still acted on


async def test_a_script_checked_service_is_reported_and_restarted(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    state = tmp_path / "legacy.state"
    ctl = tmp_path / "ctl.py"
    ctl.write_text(
        "import sys, pathlib\n"
        f"state = pathlib.Path({str(state)!r})\n"
        "cmd = sys.argv[1]\n"
        "if cmd == 'status':\n"
        "    sys.exit(0 if state.exists() and state.read_text() == 'up' else 3)\n"
        "state.write_text('up' if cmd == 'start' else 'down')\n"
        "with open(str(state) + '.log', 'a') as log: log.write(cmd + '\\n')\n"
    )

    def argv(cmd: str) -> str:
        return f"['{sys.executable}', '{ctl}', {cmd}]"

    config = {
        "apps.yaml": (
            "applications:\n"
            "  legacy:\n    hosts: [h1]\n    services:\n"
            "      daemon:\n        provider: script\n"
            f"        status: {argv('status')}\n        start: {argv('start')}\n"
            f"        stop: {argv('stop')}\n        check_interval: 1\n"
        ),
    }
    async with fleet_of(nats_server, tmp_path, config) as fleet:
        await fleet.start_server()
        await fleet.start_agent("h1")

        async def running() -> bool:
            app = await fleet.get("/api/v1/applications/legacy")
            placed = app["services"][0]["hosts"]  # empty until h1 has reported
            return bool(placed and placed[0]["status"] == "running")

        await eventually(running)  # the agent started it to reach its target
        action = await run_action(fleet, {"kind": "restart", "application": "legacy"})
        assert action["state"] == "succeeded", action
        log = (tmp_path / "legacy.state.log").read_text().split()
        assert log == ["start", "stop", "start"]
