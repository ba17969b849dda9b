"""A host without an agent, managed over SSH by the agent of another host, against a real sshd:
the config names it and how to reach it (its key a secret on the gateway), the gateway's agent
asks to enroll it and an admin approves it, and from then on it is a host of the fleet of kind
`ssh-target`: its script services checked and brought to their target, actions and commands
run on it — secrets masked, a timeout ending the remote process — under its own identity."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from drover.bus.trust.jwt import decode as decode_jwt
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import Fleet, fleet_of
from tests.sshd import Sshd

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

TOKEN = "ssh-target-token-0123456789"


def config(tmp: Path, sshd: Sshd) -> dict[str, str]:
    journal = tmp / "backup.journal"
    running = tmp / "backup.running"
    return {
        "hosts.yaml": textwrap.dedent(
            f"""\
            hosts:
              gw-01: {{}}
              nas-01:
                labels: {{kind: appliance}}
                ssh:
                  via: gw-01
                  address: 127.0.0.1
                  port: {sshd.port}
                  user: {sshd.user}
                  host_key: "{sshd.host_key}"
                  key: {{secret: "file:{sshd.client_key}"}}
            """
        ),
        "store.yaml": textwrap.dedent(
            f"""\
            applications:
              store:
                hosts: [nas-01]
                services:
                  backup:
                    provider: script
                    status: [sh, -c, 'test -f {running} || exit 3']
                    start: [sh, -c, 'echo "start $WHO" >> {journal}; touch {running}']
                    stop: [sh, -c, 'echo stop >> {journal}; rm -f {running}']
                    check_interval: 1
                    env: {{WHO: drover}}
                  web:
                    command: [sleep, '300']
                commands:
                  report:
                    argv: [sh, -c, 'echo "on $DROVER_HOST: $TOKEN"; echo "$TOKEN" > {tmp}/proof']
                    env: {{TOKEN: {{secret: "env:NAS_TOKEN"}}}}
                  hang:
                    argv: [sh, -c, 'echo $$ > {tmp}/hang.pid; exec sleep 300']
                    timeout: 1
            """
        ),
    }


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Fleet]:
    monkeypatch.setenv("NAS_TOKEN", TOKEN)  # in the gateway agent's environment
    async with fleet_of(nats_server, tmp_path, config(tmp_path, sshd)) as running:
        await running.start_server()
        yield running


async def test_a_host_without_an_agent_is_enrolled_checked_and_acted_on_over_ssh(
    fleet: Fleet, tmp_path: Path
) -> None:
    gateway = await fleet.start_agent("gw-01")

    # The gateway asks to enroll its target; nothing runs there until an admin approves.
    async def pending() -> list[dict[str, Any]]:
        keys = await fleet.get("/api/v1/enrollments?host=nas-01&state=pending")
        return list(keys)

    await eventually(pending, timeout=30)
    [request] = await pending()
    assert not (tmp_path / "backup.running").exists()
    assert fleet.http is not None
    approved = await fleet.http.post(
        "/api/v1/enrollments/nas-01/approve", json={"public_key": request["public_key"]}
    )
    assert approved.status_code == 200, approved.text

    # A host of kind ssh-target, via the gateway; its script service brought to its target.
    async def host() -> dict[str, Any]:
        found: dict[str, Any] = await fleet.get("/api/v1/hosts/nas-01")
        return found

    async def backup_running() -> bool:
        try:
            services = {s["name"]: s for s in (await host())["services"]}
        except Exception:
            return False
        return bool(services.get("backup", {}).get("status") == "running")

    await eventually(backup_running, timeout=60)
    nas = await host()
    assert (nas["kind"], nas["via"], nas["online"]) == ("ssh-target", "gw-01", True)
    assert nas["hostname"] == "127.0.0.1"
    services = {s["name"]: s for s in nas["services"]}
    assert (services["web"]["status"], services["web"]["message"]) == (
        "unknown",
        "provider process is not available on this host",
    )
    assert (tmp_path / "backup.journal").read_text() == "start drover\n"
    gateway_view = await fleet.get("/api/v1/hosts/gw-01")
    assert (gateway_view["kind"], gateway_view["via"]) == ("agent", None)

    # Its own identity: the credentials it holds let it act as nas-01, not as the gateway.
    jwt = (gateway.settings.data_dir / "targets/nas-01/identity/host.jwt").read_text()
    allowed = decode_jwt(jwt)["nats"]["pub"]["allow"]
    assert any("nas-01" in subject for subject in allowed)
    assert not any("gw-01" in subject for subject in allowed)

    # An action on its service, and commands, run over SSH.
    restart = {"kind": "restart", "application": "store", "service": "backup"}
    restarted = await run_action(fleet, restart | {"hosts": ["nas-01"]})
    [result] = restarted["hosts"]
    assert result["outcome"] == "succeeded", result
    assert (tmp_path / "backup.journal").read_text() == "start drover\nstop\nstart drover\n"

    command = {"kind": "command", "application": "store", "hosts": ["nas-01"]}
    reported = await run_action(fleet, command | {"command": "report"})
    [result] = reported["hosts"]
    assert (result["outcome"], result["output"]) == ("succeeded", "on nas-01: ***\n"), result
    assert (tmp_path / "proof").read_text() == f"{TOKEN}\n"

    hung = await run_action(fleet, command | {"command": "hang"})
    [result] = hung["hosts"]
    assert result["outcome"] == "failed"
    assert "timed out after 1s" in result["output"], result
    pid = int((tmp_path / "hang.pid").read_text())
    await eventually(lambda: not Path(f"/proc/{pid}").exists(), timeout=15)

    # All through the one connection the gateway's pool holds for it.
    assert gateway.targets is not None
    assert (gateway.targets.pool.peak, gateway.targets.pool.opened) == (1, 1)
    assert set(gateway.targets.agents) == {"nas-01"}
