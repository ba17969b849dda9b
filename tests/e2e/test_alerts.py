"""Alert rules from the config, sent to a real webhook receiver and a real SMTP server the test
starts: a host lost (sent, repeated, silenced, recovered), a failed service held past `after`,
the action failure rate, a stream's backlog; a channel that fails gets the news next round."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.alert_receivers import MailReceiver, WebhookReceiver
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

pytestmark = pytest.mark.slow

HOOK_TOKEN = "Bearer hook-secret-0123456789"


def config(hook: WebhookReceiver, mail: MailReceiver) -> dict[str, str]:
    return {
        "hosts.yaml": "hosts:\n  h1: {}\n  h2: {}\n",
        "shop.yaml": textwrap.dedent(
            """\
            applications:
              shop:
                hosts: [h1, h2]
                services:
                  web:
                    command: [sleep, '300']
                    policy: observe
                commands:
                  fail:
                    argv: [sh, -c, 'exit 1']
            """
        ),
        "alerts.yaml": textwrap.dedent(
            f"""\
            channels:
              hook:
                webhook:
                  url: {hook.url}
                  headers: {{Authorization: {{secret: "env:HOOK_TOKEN"}}}}
              mail:
                smtp: {{host: 127.0.0.1, port: {mail.port}, security: none,
                        sender: drover@example.com, to: [ops@example.com]}}
            alerts:
              host-lost: {{when: host_lost, channels: [hook, mail], renotify: 3}}
              web-failed: {{when: service_failed, after: 1, renotify: 0, channels: [hook]}}
              failures:
                when: action_failure_rate
                above: 0.5
                min_actions: 1
                window: 600
                channels: [hook]
              waiting: {{when: stream_backlog, stream: DROVER_ACTIONS, above: 0, channels: [hook]}}
            """
        ),
    }


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, MailReceiver]]:
    hook, mail = WebhookReceiver(), MailReceiver()
    await hook.start()
    mail.start()
    try:
        yield hook, mail
    finally:
        mail.stop()
        await hook.stop()


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    receivers: tuple[WebhookReceiver, MailReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Fleet]:
    monkeypatch.setenv("HOOK_TOKEN", HOOK_TOKEN)  # the server's environment
    async with fleet_of(nats_server, tmp_path, config(*receivers)) as running:
        await running.start_server()
        yield running


def news(hook: WebhookReceiver, rule: str, key: str | None = None) -> list[str]:
    """The states sent of `rule`'s alerts (of `key`), in order."""
    return [
        a["state"] for a in hook.alerts() if a["rule"] == rule and (key is None or a["key"] == key)
    ]


async def submit(fleet: Fleet, body: dict[str, Any]) -> str:
    assert fleet.http is not None
    created = await fleet.http.post("/api/v1/actions", json={"application": "shop"} | body)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


async def test_alerts_are_sent_repeated_silenced_and_cleared_on_their_channels(
    fleet: Fleet, receivers: tuple[WebhookReceiver, MailReceiver]
) -> None:
    hook, mail = receivers
    assert fleet.http is not None
    await fleet.start_agent("h1")
    await fleet.start_agent("h2")
    h2 = fleet.running[-1]
    await asyncio.sleep(2)
    assert hook.alerts() == [] and mail.mails == []  # all is well: nothing to say

    # A host lost: firing on both channels, then repeated every `renotify`.
    await h2.halt()
    await eventually(lambda: news(hook, "host-lost", "h2") == ["firing"], timeout=15)
    [(headers, _)] = [(h, b) for h, b in hook.received if b["alerts"][0]["rule"] == "host-lost"]
    assert headers["authorization"] == HOOK_TOKEN  # the secret, resolved on the server
    await eventually(
        lambda: any("[firing] host-lost: host h2 is offline" in b for b in mail.bodies())
    )
    await eventually(lambda: news(hook, "host-lost", "h2") == ["firing", "repeat"], timeout=10)

    # Silenced: no more repeats while the silence holds; the API says which holds it back.
    made = await fleet.http.post(
        "/api/v1/silences",
        json={"rule": "host-lost", "key": "h*", "duration_s": 600, "reason": "patching h2"},
    )
    assert made.status_code == 201, made.text
    silence = made.json()["id"]
    await asyncio.sleep(4.5)
    assert news(hook, "host-lost", "h2") == ["firing", "repeat"]
    [lost] = [a for a in await fleet.get("/api/v1/alerts") if a["rule"] == "host-lost"]
    assert (lost["key"], lost["silenced_by"]) == ("h2", silence)

    # An action for the lost host waits on the actions stream: its backlog.
    waiting = await submit(fleet, {"kind": "restart", "service": "web", "hosts": ["h2"]})
    await eventually(lambda: news(hook, "waiting") == ["firing"], timeout=15)
    [backlog] = [a for a in hook.alerts() if a["rule"] == "waiting"]
    assert backlog["key"].startswith("DROVER_ACTIONS/") and "h2" in backlog["key"]

    # Failed actions: the share of failed host results passes `above`.
    await submit(fleet, {"kind": "command", "command": "fail", "hosts": ["h1"]})
    await eventually(lambda: news(hook, "failures", "fleet") == ["firing"], timeout=20)
    [rate] = [a for a in hook.alerts() if a["rule"] == "failures"]
    assert rate["summary"].startswith("1 of 1 host results failed in the last 10 min")

    # A service failed, past the rule's `after`.
    web = next(s for s in (await fleet.get("/api/v1/hosts/h1"))["services"] if s["name"] == "web")
    proc = await asyncio.create_subprocess_exec("kill", str(web["pid"]))
    await proc.wait()
    await eventually(lambda: news(hook, "web-failed", "h1/shop/web") == ["firing"], timeout=15)

    # The silence ended: the lost host is repeated again. Then the webhook fails for a while:
    # the news of the host's return waits for it, and arrives once it answers again.
    ended = await fleet.http.delete(f"/api/v1/silences/{silence}")
    assert ended.status_code == 204, ended.text
    sent = ["firing", "repeat", "repeat"]
    await eventually(lambda: news(hook, "host-lost", "h2") == sent, timeout=10)
    hook.status = 500
    await fleet.start_agent("h2", enroll=False)
    await eventually(lambda: any("[resolved] host-lost" in b for b in mail.bodies()), timeout=20)
    await asyncio.sleep(1.5)
    assert news(hook, "host-lost", "h2")[-1] == "repeat"  # the webhook took nothing meanwhile
    hook.status = 200
    await eventually(lambda: news(hook, "host-lost", "h2")[-1] == "resolved", timeout=10)
    # And the action that waited ran: the backlog cleared.
    await eventually(lambda: news(hook, "waiting")[-1] == "resolved", timeout=30)
    assert (await fleet.get(f"/api/v1/actions/{waiting}"))["state"] == "succeeded"
    remaining = {a["rule"] for a in await fleet.get("/api/v1/alerts")}
    assert "host-lost" not in remaining and "waiting" not in remaining


def cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "DROVER_TOKEN": fleet.admin_token or ""}
    return subprocess.run(
        [str(Path(sys.executable).with_name("drover")), *args, "--server", fleet.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


async def test_the_cli_lists_alerts_and_makes_and_ends_silences(
    fleet: Fleet, receivers: tuple[WebhookReceiver, MailReceiver]
) -> None:
    hook, _ = receivers
    await fleet.start_agent("h1")
    await fleet.start_agent("h2")
    await fleet.running[-1].halt()
    await eventually(lambda: news(hook, "host-lost", "h2") == ["firing"], timeout=15)

    listed = await asyncio.to_thread(cli, fleet, "alerts")
    assert listed.returncode == 0, listed.stderr
    assert "host-lost" in listed.stdout and "host h2 is offline" in listed.stdout
    assert "sent" in listed.stdout

    made = await asyncio.to_thread(
        cli,
        fleet,
        "alerts",
        "silence",
        "--rule",
        "host-lost",
        "--key",
        "h*",
        "--for",
        "2h",
        "--reason",
        "patching",
    )
    assert made.returncode == 0, made.stderr
    silence = made.stdout.strip()
    assert "rule host-lost, keys matching h*, until" in made.stderr
    await asyncio.sleep(1.5)  # a round or more: the alert is known silenced
    listed = await asyncio.to_thread(cli, fleet, "alerts", "--json")
    assert [a["silenced_by"] for a in json.loads(listed.stdout)] == [silence]
    shown = await asyncio.to_thread(cli, fleet, "alerts", "silences")
    assert silence in shown.stdout and "patching" in shown.stdout

    ended = await asyncio.to_thread(cli, fleet, "alerts", "unsilence", silence)
    assert (ended.returncode, ended.stdout.strip()) == (0, f"silence {silence} ended")
    again = await asyncio.to_thread(cli, fleet, "alerts", "unsilence", silence)
    assert again.returncode != 0 and f"no silence {silence} in force" in again.stderr
    bad = await asyncio.to_thread(cli, fleet, "alerts", "silence", "--for", "soon", "--reason", "x")
    assert bad.returncode == 2
    assert "--for 'soon': expected a duration like 90s, 30m, 4h or 2d" in bad.stderr
    assert "Traceback" not in bad.stderr
