"""Schedules from the config, on a server whose clock the test moves (the agent's runs on real
time): a run when due, with its action and record; after the server was down for ten minutes,
the runs due meanwhile recorded missed and audited, and only the latest run; a scheduled action
outside an approval policy's pre-approved window held for approval, inside it let through."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.chaos.conftest import executions, journaled_command
from tests.conftest import eventually
from tests.harness import Fleet, ShiftedClock, fleet_of

pytestmark = pytest.mark.slow


# The hour the window and the restarts are set to: two hours ahead, so the clock moves no
# further than the test's API token lives.
HOUR = (datetime.now(UTC) + timedelta(hours=2)).hour


def config(tmp: Path) -> dict[str, str]:
    note, _ = journaled_command(tmp, "note", 0.1)
    argv = "[" + ", ".join(f"'{item}'" for item in note) + "]"
    return {
        "hosts.yaml": "hosts:\n  h1: {}\n",
        "shop.yaml": textwrap.dedent(
            f"""\
            applications:
              shop:
                hosts: [h1]
                services:
                  web: {{command: [sleep, '300'], policy: observe}}
                commands:
                  note: {{argv: {argv}}}
            """
        ),
        "schedules.yaml": textwrap.dedent(
            f"""\
            schedules:
              every-minute:
                cron: "* * * * *"
                kind: command
                application: shop
                command: note
                late: 120
              on-the-hour:
                cron: "0 {HOUR} * * *"
                kind: restart
                application: shop
                service: web
              half-past:
                cron: "30 {HOUR} * * *"
                kind: restart
                application: shop
                service: web
            approvals:
              - name: restarts
                kinds: [restart]
                preapproved:   # HOUR:00 to HOUR:10, UTC
                  - {{cron: "0 {HOUR} * * *", timezone: UTC, duration: 600}}
            """
        ),
    }


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, config(tmp_path)) as running:
        yield running


def just_before(clock: ShiftedClock, hour: int | None = None, minute: int = 0) -> None:
    """Move the clock to a second before the next full minute (of `hour`:`minute`, UTC)."""
    now = clock.now()
    if hour is None:
        target = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    else:
        target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target <= now:
            target += timedelta(days=1)
    clock.offset += target - timedelta(seconds=1) - now


async def runs(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    schedules = {s["name"]: s for s in await fleet.get("/api/v1/schedules")}
    return list(schedules[name]["runs"])


async def test_a_schedule_runs_when_due_and_reports_what_it_missed_while_drover_was_down(
    fleet: Fleet, tmp_path: Path
) -> None:
    clock = ShiftedClock()
    await fleet.start_server(clock=clock)
    await fleet.start_agent("h1")
    just_before(clock)
    await eventually(lambda: runs(fleet, "every-minute"), timeout=10)
    [first] = await runs(fleet, "every-minute")
    assert (first["state"], first["note"]) == ("ran", "")
    action = await fleet.get(f"/api/v1/actions/{first['action_id']}")
    assert action["requested_by"] == "schedule:every-minute"

    async def noted(count: int) -> bool:
        began, ended = executions(tmp_path / "note.journal")
        return len(began) == count and len(ended) == count

    await eventually(lambda: noted(1), timeout=20)

    # Down for ten minutes: what fell due meanwhile is reported missed, and only the run due
    # last (within its `late`) runs.
    await fleet.running[0].halt()
    fleet.running.pop(0)
    clock.offset += timedelta(minutes=10)
    await fleet.start_server(clock=clock)
    await eventually(lambda: _count(fleet, "every-minute", "ran", 2), timeout=15)
    found = await runs(fleet, "every-minute")
    missed = [run for run in found if run["state"] == "missed"]
    assert len(missed) == 9, found
    assert all(run["note"] == "not run at its time: a later one was due" for run in missed)
    await eventually(lambda: noted(2), timeout=20)  # not eleven
    audit = await fleet.get("/api/v1/audit?kind=schedule.missed")
    assert len(audit) == 9 and {entry["subject"] for entry in audit} == {"every-minute"}


async def _count(fleet: Fleet, name: str, state: str, count: int) -> bool:
    return sum(1 for run in await runs(fleet, name) if run["state"] == state) == count


async def test_a_scheduled_restart_is_let_through_only_inside_a_pre_approved_window(
    fleet: Fleet,
) -> None:
    clock = ShiftedClock()
    await fleet.start_server(clock=clock)
    await fleet.start_agent("h1")

    just_before(clock, hour=HOUR)  # inside the window
    await eventually(lambda: runs(fleet, "on-the-hour"), timeout=10)
    [inside] = await runs(fleet, "on-the-hour")
    action = await fleet.get(f"/api/v1/actions/{inside['action_id']}")
    assert action["approval"] is None  # no request: let through
    await eventually(lambda: _state(fleet, inside["action_id"], "succeeded"), timeout=30)

    just_before(clock, hour=HOUR, minute=30)  # past it: four eyes, as for anyone
    await eventually(lambda: runs(fleet, "half-past"), timeout=10)
    [outside] = await runs(fleet, "half-past")
    held = await fleet.get(f"/api/v1/actions/{outside['action_id']}")
    assert held["state"] == "pending-approval"
    assert held["approval"]["requested_by"] == "schedule:half-past"
    due = datetime.fromisoformat(outside["due_at"]).astimezone(UTC)
    assert (due.hour, due.minute) == (HOUR, 30)


async def _state(fleet: Fleet, action_id: str, state: str) -> bool:
    return bool((await fleet.get(f"/api/v1/actions/{action_id}"))["state"] == state)


async def test_the_cli_lists_the_schedules_with_their_runs(fleet: Fleet) -> None:
    clock = ShiftedClock()
    await fleet.start_server(clock=clock)
    await fleet.start_agent("h1")
    just_before(clock)
    await eventually(lambda: runs(fleet, "every-minute"), timeout=10)
    env = {**os.environ, "COLUMNS": "250", "DROVER_TOKEN": fleet.admin_token or ""}
    drover = str(Path(sys.executable).with_name("drover"))
    shown = await asyncio.to_thread(
        subprocess.run,
        [drover, "schedules", "--server", fleet.base_url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "every-minute" in shown.stdout and "* * * * * UTC" in shown.stdout
    assert "command shop" in shown.stdout and "ran (" in shown.stdout
