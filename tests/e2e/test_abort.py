"""Cancels that abort what runs, with real agents on a real nats-server: a command killed with
its whole process group, an action aborted while its host was away never run (or killed when
the bus comes back), a plain cancel raised to an abort, services not yet reached skipped, and a
host that had finished keeping its result. Each host's own answer replaces the server's
`cancelled`, and says who aborted it."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg

from drover.agent.executor import Executor
from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import AbortRequest, encode
from tests.busauth import signed, superuser_client
from tests.conftest import eventually
from tests.e2e.test_commands import _alive, all_events, submit, text_of
from tests.e2e.test_discovery import drover_cli
from tests.harness import Fleet, fleet_of

PY = [sys.executable, "-S"]

# Starts a child in its own process group, writes both pids, then waits for a gate file that
# the test never creates: only an abort (or its 300 s timeout) ends it.
LONG = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("waiting", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
print("gate open", flush=True)
"""
# A service that ignores SIGTERM: stopping it takes its whole stop_timeout.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
ABORTED_MID_RUN = "[aborted by admin: its process group was stopped; killed by SIGTERM]"
NOT_STARTED = "[aborted by admin before it started: it will not run here]"


def config(tmp: Path, slow: bool = False) -> dict[str, str]:
    """Commands on h1 and h2; with `slow`, also services on h1 that are slow to stop (which
    makes every agent stop of the test take their stop_timeout)."""
    (tmp / "long.py").write_text(textwrap.dedent(LONG))

    def argv(*items: str) -> str:
        return json.dumps(list(items))

    service = f"{{command: {argv(*PY, '-c', STUBBORN)}, stop_timeout: 4}}"
    files = {
        "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
        "hosts.yaml": "hosts:\n  h1: {}\n  h2: {}\n",
        "jobs.yaml": textwrap.dedent(
            f"""\
            applications:
              jobs:
                groups: [all]
                commands:
                  long:
                    argv: {argv(*PY, str(tmp / "long.py"), "{pids}", "{gate}")}
                    params:
                      pids: {{type: string, required: true}}
                      gate: {{type: string, required: true}}
                  once:
                    argv: [sh, -c, 'echo ran >> {tmp / "journal"}; echo once']
            """
        ),
    }
    if slow:
        files["slow.yaml"] = "applications:\n  slow:\n    hosts: [h1]\n    services:\n" + "".join(
            f"      {name}: {service}\n" for name in ("s1", "s2", "s3")
        )
    return files


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, database_url: str
) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server(database_url=database_url)
        yield running


@pytest.fixture
async def sqlite_fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        await running.start_server()
        yield running


async def cancel(fleet: Fleet, action_id: str, status: int = 200, **body: Any) -> Any:
    assert fleet.http is not None
    response = await fleet.http.post(f"/api/v1/actions/{action_id}/cancel", json=body, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


async def host_row(fleet: Fleet, action_id: str, host: str) -> dict[str, Any]:
    action = await fleet.get(f"/api/v1/actions/{action_id}")
    [row] = [h for h in action["hosts"] if h["host"] == host]
    return dict(row)


async def answered(
    fleet: Fleet, action_id: str, host: str, phrase: str, timeout: float = 30
) -> dict[str, Any]:
    """The host's row once its own answer (its output holds `phrase`) is recorded."""
    row: dict[str, Any] = {}

    async def has_it() -> bool:
        row.update(await host_row(fleet, action_id, host))
        return phrase in row["output"]

    await eventually(has_it, timeout=timeout)
    return row


async def started(pids: Path) -> list[int]:
    """The pids the command wrote, once it has (it renames the file into place whole)."""
    await eventually(pids.exists, timeout=20)
    return _read_pids(pids)


def _read_pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


async def all_gone(pids: list[int]) -> None:
    await eventually(lambda: not any(_alive(p) for p in pids), timeout=15)


async def test_an_abort_kills_a_running_command_and_its_whole_process_group(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.start_agent("h1")
    pids_file, gate = tmp_path / "pids", tmp_path / "gate"
    action = await submit(fleet, "long", pids=str(pids_file), gate=str(gate))
    pids = await started(pids_file)
    assert all(_alive(p) for p in pids)

    cancelled = await cancel(fleet, action["id"], abort_running=True)
    assert cancelled["rollout_state"] == "cancelled"
    assert cancelled["cancel"] == {"abort_running": True, "requested_by": "admin"}
    [host] = cancelled["hosts"]
    # The server stopped waiting at once, and the abort is on the bus.
    assert host["outcome"] == "cancelled" and host["abort_sent_at"] is not None

    row = await answered(fleet, action["id"], "h1", "aborted by admin")
    assert (row["outcome"], row["exit_code"]) == ("cancelled", 143)
    assert row["output"] == f"waiting\n{ABORTED_MID_RUN}"
    await all_gone(pids)
    # The live output ends with the host's answer, not with the server's mark.
    found = await all_events(fleet, action["id"])
    assert text_of(found, "h1") == "waiting\n"
    end = json.loads(found[-2].data)
    assert (end["outcome"], end["exit_code"]) == ("cancelled", 143)
    audit = await fleet.get(f"/api/v1/audit?subject={action['id']}&kind=action.")
    kinds = [e["kind"] for e in audit]
    assert {"action.cancel_requested", "action.halted", "action.abort_sent"} <= set(kinds)
    [sent] = [e for e in audit if e["kind"] == "action.abort_sent"]
    assert (sent["actor"], sent["detail"]) == ("drover", {"hosts": ["h1"]})


async def test_a_plain_cancel_can_be_raised_to_an_abort(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    pids_file = tmp_path / "pids"
    action = await submit(fleet, "long", pids=str(pids_file), gate=str(tmp_path / "gate"))
    pids = await started(pids_file)

    plain = await cancel(fleet, action["id"])
    assert plain["rollout_state"] == "cancelled"
    assert [h["outcome"] for h in plain["hosts"]] == ["dispatched"]  # left to finish
    again = await cancel(fleet, action["id"], status=409)
    assert again["detail"] == (
        f"action {action['id']} is already cancelled; 1 host(s) still running (h1) finish, "
        "unless a cancel with abort_running aborts them"
    )
    assert all(_alive(p) for p in pids)

    run = await asyncio.to_thread(
        drover_cli, fleet, "action", "cancel", action["id"], "--abort-running"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"action {action['id']}: cancelled by admin" in run.stdout
    assert "abort sent to 1 host (h1)" in run.stdout
    row = await answered(fleet, action["id"], "h1", "aborted by admin")
    assert (row["outcome"], row["exit_code"]) == ("cancelled", 143)
    await all_gone(pids)
    late = await cancel(fleet, action["id"], status=409, abort_running=True)
    assert "no longer running" in late["detail"]


async def test_an_action_aborted_while_its_agent_was_stopped_never_runs(
    sqlite_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = sqlite_fleet
    # The agent takes aborts slowly here: were actions not held until the aborts waiting on
    # the bus are taken, the action would start first.
    take_abort = Executor.handle_abort

    async def slowly(self: Executor, msg: Msg) -> None:
        await asyncio.sleep(1)
        await take_abort(self, msg)

    monkeypatch.setattr(Executor, "handle_abort", slowly)
    await fleet.start_agent("h1")
    await fleet.running[-1].halt()
    action = await submit(fleet, "once")

    async def dispatched() -> bool:
        return bool((await host_row(fleet, action["id"], "h1"))["outcome"] == "dispatched")

    await eventually(dispatched)
    cancelled = await cancel(fleet, action["id"], abort_running=True)
    assert cancelled["hosts"][0]["abort_sent_at"] is not None
    # Both the action and its abort wait on the bus; the agent takes the abort first.
    agent = await fleet.start_agent("h1")
    row = await answered(fleet, action["id"], "h1", "before it started")
    assert (row["outcome"], row["exit_code"], row["output"]) == ("cancelled", None, NOT_STARTED)
    await eventually(lambda: agent.ledger.lookup(action["id"]) is not None)
    await asyncio.sleep(1)  # the action itself, delivered after the abort, is answered too
    assert not (tmp_path / "journal").exists()
    assert agent.executor.executions == 0


async def test_an_abort_sent_while_the_bus_is_down_kills_the_command_when_it_is_back(
    sqlite_fleet: Fleet, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    await fleet.start_agent("h1")
    pids_file = tmp_path / "pids"
    action = await submit(fleet, "long", pids=str(pids_file), gate=str(tmp_path / "gate"))
    pids = await started(pids_file)

    await nats_server.stop()
    cancelled = await cancel(fleet, action["id"], abort_running=True)
    [host] = cancelled["hosts"]
    assert host["outcome"] == "cancelled" and host["abort_sent_at"] is None  # not on the bus
    assert all(_alive(p) for p in pids)  # the agent has not heard of it
    await nats_server.start()  # same port, same store

    row = await answered(fleet, action["id"], "h1", "aborted by admin", timeout=60)
    assert (row["outcome"], row["output"]) == ("cancelled", f"waiting\n{ABORTED_MID_RUN}")
    await all_gone(pids)


async def test_a_host_that_had_finished_keeps_its_result_and_an_offline_one_never_runs(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    h1 = await fleet.start_agent("h1")  # h2 is offline
    action = await submit(fleet, "once", ["h1", "h2"])

    async def h1_done() -> bool:
        return bool((await host_row(fleet, action["id"], "h1"))["outcome"] == "succeeded")

    await eventually(h1_done)
    cancelled = await cancel(fleet, action["id"], abort_running=True)
    rows = {h["host"]: h for h in cancelled["hosts"]}
    assert (rows["h1"]["outcome"], rows["h1"]["abort_requested_at"]) == ("succeeded", None)
    assert rows["h2"]["outcome"] == "cancelled" and rows["h2"]["abort_sent_at"] is not None

    # An abort that reaches a host after it finished changes nothing there: it answers with
    # its result again, which the server already has.
    stray = AbortRequest(
        action_id=action["id"], host="h1", requested_by="admin", requested_at=datetime.now(UTC)
    )
    nc = await superuser_client(fleet.nats)
    try:
        payload = encode(stray)
        await nc.jetstream().publish(
            subjects.abort_subject("h1"), payload, headers=signed(fleet.nats, payload)
        )
    finally:
        await nc.close()
    h2 = await fleet.start_agent("h2")
    row = await answered(fleet, action["id"], "h2", "before it started")
    assert row["outcome"] == "cancelled"
    await asyncio.sleep(1)
    assert (tmp_path / "journal").read_text() == "ran\n"  # h1's run, once
    assert (h1.executor.executions, h2.executor.executions) == (1, 0)
    final = await host_row(fleet, action["id"], "h1")
    assert (final["outcome"], final["output"]) == ("succeeded", "once\n")


async def test_an_abort_of_a_restart_finishes_the_service_under_way_and_skips_the_rest(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with fleet_of(nats_server, tmp_path, config(tmp_path, slow=True)) as fleet:
        await fleet.start_server()
        await fleet.start_agent("h1")
        await _abort_a_slow_restart(fleet)


async def _abort_a_slow_restart(fleet: Fleet) -> None:

    async def services() -> dict[str, dict[str, Any]]:
        [host] = [h for h in await fleet.get("/api/v1/hosts") if h["host"] == "h1"]
        return {s["name"]: s for s in host["services"] if s["application"] == "slow"}

    async def all_running() -> bool:
        found = await services()
        return len(found) == 3 and all(s["status"] == "running" for s in found.values())

    await eventually(all_running, timeout=30)
    before = {name: s["pid"] for name, s in (await services()).items()}
    assert fleet.http is not None
    created = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "slow", "hosts": ["h1"]}
    )
    assert created.status_code == 202, created.text
    action_id = created.json()["id"]

    async def s1_stopping() -> bool:  # it ignores SIGTERM: its stop takes 4 s
        return bool((await services())["s1"]["status"] == "stopping")

    await eventually(s1_stopping)
    await cancel(fleet, action_id, abort_running=True)
    row = await answered(fleet, action_id, "h1", "skipped: aborted by admin")
    assert row["outcome"] == "cancelled"
    lines = row["output"].splitlines()
    assert lines[0].startswith("slow/s1: ") and "skipped" not in lines[0]
    assert lines[1:] == [
        "slow/s2: skipped: aborted by admin",
        "slow/s3: skipped: aborted by admin",
    ]

    async def s1_back() -> bool:
        s1 = (await services())["s1"]
        return bool(s1["status"] == "running" and s1["pid"] != before["s1"])

    await eventually(s1_back, timeout=20)
    after = {name: s["pid"] for name, s in (await services()).items()}
    assert (after["s2"], after["s3"]) == (before["s2"], before["s3"])
