"""`drover outpost init` and `drover outpost`, run as an operator runs them: the bundle made
from the hub's bus authority, the outpost started from it as a process of its own, a host
enrolled over the API and connected to it. Through the outpost the host takes an action and
reports; revoked on the hub, it is refused at the outpost too (the system account's link
carried the news); SIGTERM stops the outpost, exit 0."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors

from drover.agent.enrollment import Enrollment
from drover.bus.embedded import EmbeddedNats, free_port
from drover.bus.trust.credentials import BusIdentity
from drover.bus.trust.pki import ensure_server_certificate
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

DROVER = str(Path(sys.executable).parent / "drover")
CONFIG = {
    "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
    "hosts.yaml": "hosts:\n  far-1: {}\n",
    "site.yaml": (
        "applications:\n"
        "  site:\n"
        "    groups: [all]\n"
        "    commands:\n"
        "      hello:\n"
        "        argv: ['echo', 'hello from the site']\n"
    ),
}


@contextlib.asynccontextmanager
async def outpost_process(
    hub: EmbeddedNats, tmp: Path, port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`drover outpost init`, then `drover outpost`, up once it says the hub answers."""
    assert hub.security is not None
    made = await asyncio.to_thread(
        subprocess.run,
        [
            DROVER,
            "outpost",
            "init",
            "far",
            "--bus-authority",
            str(hub.security.authority.directory),
            "--out",
            str(tmp / "bundle"),
            "--hub-ca",
            str(hub.security.certificate.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "bundle made in" in made.stdout
    certificate = ensure_server_certificate(tmp / "bus" / "pki", ["localhost"], ["127.0.0.1"])
    process = await asyncio.create_subprocess_exec(
        DROVER,
        "outpost",
        "--bundle",
        str(tmp / "bundle"),
        "--hub",
        f"tls://127.0.0.1:{hub.leaf_port}",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(tmp / "outpost"),
        "--tls-cert",
        str(certificate.cert_file),
        "--tls-key",
        str(certificate.key_file),
        "--tls-ca",
        str(certificate.ca_file),
        stderr=asyncio.subprocess.PIPE,
    )
    said: list[str] = []
    try:
        assert process.stderr is not None
        while "the hub answers; link up" not in (said[-1] if said else ""):
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "drover outpost ended: " + "".join(said)
            said.append(line.decode())
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def refusal(enrollment: Enrollment, url: str) -> str:
    """Why a connection to `url` with the host's credentials is refused ("" if it is not)."""
    identity = BusIdentity.from_files(enrollment.seed_file, enrollment.jwt_file)
    assert enrollment.ca_file is not None
    try:
        client = await nats.connect(
            url,
            tls=ssl.create_default_context(cafile=str(enrollment.ca_file)),
            user_jwt_cb=lambda: identity.user_jwt().encode(),
            signature_cb=lambda nonce: base64.b64encode(identity.key.sign(nonce.encode())),
            allow_reconnect=False,
            connect_timeout=3,
        )
    except (nats.errors.Error, OSError) as err:
        return str(err).lower()
    await client.close()
    return ""


async def test_an_outpost_started_by_its_command_carries_a_host_until_it_is_revoked(
    hub: EmbeddedNats, tmp_path: Path
) -> None:
    port = free_port()
    async with (
        fleet_of(hub, tmp_path, CONFIG) as fleet,
        outpost_process(hub, tmp_path, port) as outpost,
    ):
        await fleet.start_server()
        url = f"tls://127.0.0.1:{port}"
        agent = await fleet.start_agent("far-1", nats_url=url)
        await asyncio.wait_for(agent.desired_known.wait(), 20)
        assert agent.bus.nc.connected_url is not None
        assert agent.bus.nc.connected_url.port == port  # the outpost's, not the hub's

        action = await _ask(fleet)
        done = await fleet.get(f"/api/v1/actions/{action}")
        assert [(h["host"], h["outcome"], h["output"]) for h in done["hosts"]] == [
            ("far-1", "succeeded", "hello from the site\n")
        ]
        assert await refusal(agent.enrollment, url) == ""  # a control: its credentials work

        assert fleet.http is not None
        revoked = await fleet.http.post("/api/v1/hosts/far-1/revoke")
        assert revoked.status_code == 200, revoked.text
        await eventually(lambda: _refused(agent.enrollment, url), timeout=20, interval=0.5)

        outpost.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(outpost.wait(), 30) == 0


async def _refused(enrollment: Enrollment, url: str) -> bool:
    return "authorization violation" in await refusal(enrollment, url)


async def _ask(fleet: Fleet) -> str:
    assert fleet.http is not None
    body = {"kind": "command", "application": "site", "command": "hello", "hosts": ["far-1"]}
    created = await fleet.http.post("/api/v1/actions", json=body)
    assert created.status_code == 202, created.text
    action_id = str(created.json()["id"])

    async def over() -> bool:
        action = await fleet.get(f"/api/v1/actions/{action_id}")
        return bool(action["state"] != "running")

    await eventually(over, timeout=30, interval=0.2)
    return action_id
