"""The canary and the service level indicators: a ping through the whole action path to each
online host in turn, its outcome counted (ok, failed with its cause, lost), and the action
API's answers counted for its availability; all on /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.harness import Fleet, fleet_of

pytestmark = pytest.mark.slow

CONFIG = {
    "hosts.yaml": "hosts:\n  h1: {}\n  h2: {}\n",
    "shop.yaml": (
        "applications:\n  shop:\n    hosts: [h1, h2]\n"
        "    services:\n      web: {command: [sleep, '300'], policy: observe}\n"
    ),
}


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server(answer_grace=timedelta(seconds=1))
        yield running


async def metric(fleet: Fleet, name: str, label: str) -> float:
    assert fleet.http is not None
    text = (await fleet.http.get("/metrics")).text
    labels = f"{{{label}}}" if label else ""
    found = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


async def test_the_canary_pings_each_host_in_turn_and_counts_how_each_ended(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fleet.start_agent("h1")
    await fleet.start_agent("h2")
    h2 = fleet.running[-1]
    assert fleet.server is not None and fleet.server.canary is not None
    canary = fleet.server.canary

    assert await canary.once() == "ok"
    assert await canary.once() == "ok"
    assert await canary.once() == "ok"
    assert canary.last is not None and canary.last[0] == "h1"  # h1, h2, h1 again
    actions = await fleet.get("/api/v1/actions")
    pings = [a for a in actions if a["requested_by"] == "drover-canary"]
    assert len(pings) == 3 and {a["kind"] for a in pings} == {"ping"}

    # h2 stops answering (still online for its heartbeats' window): its ping expires with no
    # answer, which the run counts lost and says so.
    monkeypatch.setattr(canary, "_deadline", timedelta(seconds=1))
    await h2.halt()
    assert await canary.once() == "lost"
    assert canary.last == ("h2", "lost", "expired: sent, but no answer by its deadline")

    runs = {
        outcome: await metric(fleet, "drover_canary_runs_total", f'outcome="{outcome}"')
        for outcome in ("ok", "failed", "lost")
    }
    assert runs == {"ok": 3.0, "failed": 0.0, "lost": 1.0}
    assert await metric(fleet, "drover_canary_duration_seconds_count", "") == 4.0
    # The same four host results, in the reliability indicator over every action.
    results = {
        result: await metric(fleet, "drover_sli_host_results_total", f'result="{result}"')
        for result in ("completed", "identified", "unexplained")
    }
    assert results == {"completed": 3.0, "identified": 0.0, "unexplained": 1.0}

    # Its loop: a run every `every` seconds (server: while it holds the lease).
    canary.every = 0.3
    looping = asyncio.create_task(canary.run())
    await asyncio.sleep(1.5)
    looping.cancel()
    assert await metric(fleet, "drover_canary_runs_total", 'outcome="ok"') >= 4.0


async def test_the_action_apis_answers_are_counted_for_its_availability(fleet: Fleet) -> None:
    assert fleet.http is not None
    before = await metric(fleet, "drover_sli_action_api_requests_total", 'result="ok"')
    await fleet.http.get("/api/v1/actions")
    refused = await fleet.http.post("/api/v1/actions", json={"kind": "restart"})
    assert refused.status_code == 422  # the caller's mistake: the API answered
    await fleet.http.get("/api/v1/hosts")  # not the action API
    after = await metric(fleet, "drover_sli_action_api_requests_total", 'result="ok"')
    assert after - before == 2
    assert await metric(fleet, "drover_sli_action_api_requests_total", 'result="error"') == 0
