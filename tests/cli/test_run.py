"""`drover run` and `drover output` as a person runs them: in a subprocess, against a running
drover with two agents."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.harness import Fleet, fleet_of

DROVER = str(Path(sys.executable).parent / "drover")
CONFIG = {
    "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
    "hosts.yaml": "hosts:\n  h1: {}\n  h2: {}\n",
    "jobs.yaml": """\
applications:
  jobs:
    groups: [all]
    commands:
      greet:
        argv: [sh, -c, 'echo "hello $1"; printf "no newline"', greet, "{name}"]
        params: {name: {type: string, pattern: "^[a-z]+$", required: true}}
      fail-on-h2:
        argv: [sh, -c, 'echo trying; test "$DROVER_PARAM_HOST" != h2']
        params: {host: {type: string, default: h2}}
      raw:
        argv: [printf, 'caf\\303\\251 \\377\\n']
""",
}


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server()
        await asyncio.gather(running.start_agent("h1"), running.start_agent("h2"))
        yield running


async def drover(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DROVER_TOKEN": fleet.admin_token, "DROVER_SERVER": fleet.base_url}
    return await asyncio.to_thread(
        subprocess.run, [DROVER, *args], capture_output=True, timeout=60, env=env
    )


async def test_drover_run_prints_each_hosts_lines_after_its_name_and_exits_0(fleet: Fleet) -> None:
    done = await drover(fleet, "run", "jobs", "greet", "--param", "name=world", "--batch", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert sorted(lines) == [
        "h1 | hello world",
        "h1 | no newline",
        "h2 | hello world",
        "h2 | no newline",
    ]
    assert lines[0] == "h1 | hello world"  # batches of one: h1 first
    said = done.stderr.decode()
    assert "greet on 2 host(s): h1, h2" in said
    assert "h1: succeeded, exit 0" in said and "h2: succeeded, exit 0" in said

    action_id = said.split()[1].rstrip(":")
    again = await drover(fleet, "output", action_id, "--follow", "--host", "h2")
    assert (again.returncode, again.stdout.decode()) == (
        0,
        "h2 | hello world\nh2 | no newline\n",
    )


async def test_drover_run_exits_1_when_the_command_failed_on_a_host(fleet: Fleet) -> None:
    done = await drover(fleet, "run", "jobs", "fail-on-h2", "--host", "h2")
    assert done.returncode == 1
    assert done.stdout.decode() == "h2 | trying\n"
    assert "h2: failed, exit 1" in done.stderr.decode()
    assert "error: action " in done.stderr.decode()
    assert "failed on 1 of 1 host(s)" in done.stderr.decode()


async def test_a_bad_parameter_exits_2_with_the_servers_reason(fleet: Fleet) -> None:
    done = await drover(fleet, "run", "jobs", "greet", "--param", "name=World")
    assert done.returncode == 2
    assert done.stderr.decode() == "error: params.name: 'World' does not match ^[a-z]+$\n"
    malformed = await drover(fleet, "run", "jobs", "greet", "--param", "name")
    assert malformed.returncode == 2
    assert "--param 'name': expected NAME=VALUE" in malformed.stderr.decode()
    unknown = await drover(fleet, "run", "jobs", "nope")
    assert unknown.returncode == 2
    assert "application 'jobs' has no command 'nope'" in unknown.stderr.decode()


async def test_drover_output_of_one_host_is_its_bytes_exactly(fleet: Fleet) -> None:
    done = await drover(fleet, "run", "jobs", "raw")
    assert done.returncode == 0, done.stderr
    action_id = done.stderr.decode().split()[1].rstrip(":")
    whole = await drover(fleet, "output", action_id, "--host", "h1")
    assert (whole.returncode, whole.stdout) == (0, b"caf\xc3\xa9 \xff\n")
    both = await drover(fleet, "output", action_id)  # as text, after each host's name
    assert both.stdout.decode() == "h1 | café \ufffd\nh2 | café \ufffd\n"
