"""Secrets named in the config (`env:NAME`, `file:/path`) reach the processes that need them on
the host, and nowhere else: after commands and services have used them — and printed them — the
value is in no file of the run (the config repository, the nats-server's JetStream store, the
agent's data, the SQLite database), not in the PostgreSQL database nor its log, not in any log
record of the server or the agent, and not in what the API answers. What the processes printed
is there, masked; the search is shown to reach each place by finding that masked output there.

What a service prints is its own log (the journal, or the log file of a process the agent
supervises), which drover does not read back: the supervised `worker` here keeps its secrets to
itself, as an application should. What drover reads back — a command's output, a script's — it
masks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import Fleet, fleet_of
from tests.postgres import PostgresCluster

# What the processes print: the masked form of this is the control that each search can see.
SAID = "token={token} pass={password}"
MASKED = "token=*** pass=***"


def config(tmp: Path) -> dict[str, str]:
    proof = tmp / "proof"
    env = (
        "{TOKEN: {secret: 'env:SHOP_API_TOKEN'}, "
        f"PASSWORD: {{secret: 'file:{tmp / 'secrets' / 'db-password'}'}}, MODE: plain}}"
    )
    say = 'echo "token=$TOKEN pass=$PASSWORD"'
    keep = 'printf "%s %s" "$TOKEN" "$PASSWORD" > '
    return {
        "hosts.yaml": "hosts:\n  h1: {}\n",
        "shop.yaml": textwrap.dedent(
            f"""\
            applications:
              shop:
                hosts: [h1]
                services:
                  worker:
                    command: [sh, -c, '{keep}{proof}.worker; echo working; exec sleep 300']
                    env: {env}
                  locked-out:
                    command: [sleep, '300']
                    env: {{KEY: {{secret: 'file:{tmp / "secrets" / "absent"}'}}}}
                  checked:
                    provider: script
                    status: [sh, -c, '{keep}{proof}.checked; {say}; exit 1']
                    start: ['true']
                    stop: ['true']
                    check_interval: 1
                    policy: observe
                    env: {env}
                commands:
                  reveal:
                    argv: [sh, -c, '{keep}{proof}.reveal; {say}; echo "mode=$MODE"']
                    env: {env}
                  locked-out:
                    argv: [sh, -c, 'echo never']
                    env: {{KEY: {{secret: 'file:{tmp / "secrets" / "absent"}'}}}}
            """
        ),
    }


@pytest.fixture
def values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The two secrets, new for each run: one in the agent's environment, one in a file."""
    token, password = f"tok-{secrets.token_hex(12)}", f"pw-{secrets.token_hex(12)}"
    monkeypatch.setenv("SHOP_API_TOKEN", token)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db-password").write_text(password + "\n")
    return token, password


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, database_url: str, values: tuple[str, str]
) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server(database_url=database_url)
        yield running


async def run(fleet: Fleet, command: str) -> dict[str, Any]:
    body = {"kind": "command", "application": "shop", "command": command, "hosts": ["h1"]}
    return await run_action(fleet, body)


async def test_secrets_reach_their_processes_and_are_stored_and_logged_nowhere(
    fleet: Fleet,
    tmp_path: Path,
    values: tuple[str, str],
    database_url: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token, password = values
    await fleet.start_agent("h1")
    proof = tmp_path / "proof"

    # The processes got the values: a command, a supervised process, a script service.
    revealed = await run(fleet, "reveal")
    [host] = revealed["hosts"]
    assert (host["outcome"], host["exit_code"]) == ("succeeded", 0), host
    await eventually(
        lambda: all((proof.with_suffix(f".{n}")).exists() for n in ("worker", "checked")),
        timeout=20,
    )
    for name in ("reveal", "worker", "checked"):
        assert proof.with_suffix(f".{name}").read_text() == f"{token} {password}", name

    # What they printed comes back masked: the command's output, the script's status message.
    assert host["output"] == f"{MASKED}\nmode=plain\n"

    absent = tmp_path / "secrets" / "absent"
    said = {
        "checked": f"status exited 1: {MASKED}",
        # A secret that cannot be had keeps its service from starting, and says why.
        "locked-out": f"cannot start: secret file:{absent} for KEY: no such file",
    }

    async def services_say() -> bool:
        services = (await fleet.get("/api/v1/hosts/h1"))["services"]
        found = {s["name"]: s["message"] for s in services}
        return all(found.get(name) == message for name, message in said.items())

    await eventually(services_say, timeout=20)

    # And fails a command on the host, with the reference and the reason.
    refused = await run(fleet, "locked-out")
    [host] = refused["hosts"]
    assert host["outcome"] == "failed"
    assert f"secret file:{absent} for KEY: no such file" in host["output"], host

    answers = [await fleet.get(f"/api/v1/actions/{revealed['id']}")]
    answers.append(await fleet.get("/api/v1/hosts/h1"))
    assert fleet.http is not None
    output = await fleet.http.get(f"/api/v1/actions/{revealed['id']}/output")
    answers.append(output.text)
    await fleet.close()  # everything written and flushed

    proofs = {proof.with_suffix(f".{name}") for name in ("reveal", "worker", "checked")}
    places = _files(tmp_path, excluding=proofs | {tmp_path / "secrets" / "db-password"})
    if database_url.startswith("postgresql"):
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        places["pg_dump"] = await asyncio.to_thread(cluster.dump, database_url)
        places["postgres log"] = cluster.log.read_bytes()
    places["log records"] = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    ).encode()
    places["API answers"] = repr(answers).encode()

    for value in (token, password):
        leaks = [where for where, data in places.items() if value.encode() in data]
        assert not leaks, f"the secret is in {leaks}"
    # The search sees into each kind of place: the masked output is found there, and the
    # log records are those of the runs.
    seen = {where for where, data in places.items() if MASKED.encode() in data}
    assert "API answers" in seen
    assert any(where.startswith("nats/") for where in seen), sorted(seen)
    database = "pg_dump" if database_url.startswith("postgresql") else "drover.db"
    assert any(where.startswith(database) for where in seen), sorted(seen)
    assert b"reveal started" in places["log records"]


def _files(root: Path, excluding: set[Path]) -> dict[str, bytes]:
    """Every regular file under `root` but those excluded, by path relative to `root`."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and path not in excluding
    }
