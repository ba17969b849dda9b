"""A result the database refuses blocks no other and is not lost; one that fails because the
database is out of reach is tried again. On SQLite and PostgreSQL, against a real nats-server,
with results published as an agent would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import ActionResult, encode
from drover.model.action import HostOutcome
from drover.store.actions import ActionStore, HostResult
from drover.store.audit import AuditEntry
from tests.busauth import superuser_client
from tests.conftest import eventually
from tests.harness import Fleet, fleet_of

HOSTS = ("h1", "h2")
CONFIG = {
    "groups.yaml": "groups:\n  all: {hosts: ['*']}\n",
    "hosts.yaml": "hosts:\n" + "".join(f"  {h}: {{}}\n" for h in HOSTS),
    "shop.yaml": "applications:\n  shop:\n    groups: [all]\n    services:\n"
    "      web: {command: [sleep, '3600']}\n",
}
NOTE = "[drover: the database refused this result as it came ("
Batch = Sequence[tuple[str, HostResult, AuditEntry | None]]


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, database_url: str
) -> AsyncIterator[Fleet]:
    # No agent runs: the test answers for the hosts, as their agents would.
    async with fleet_of(nats_server, tmp_path, CONFIG) as running:
        await running.start_server(database_url=database_url)
        yield running


async def sent_to_both(fleet: Fleet) -> str:
    """An action dispatched to h1 and h2, whose answers the test will give."""
    assert fleet.http is not None
    created = await fleet.http.post(
        "/api/v1/actions", json={"kind": "restart", "application": "shop"}
    )
    assert created.status_code == 202, created.text
    action_id: str = created.json()["id"]

    async def dispatched() -> bool:
        action = await fleet.get(f"/api/v1/actions/{action_id}")
        return {h["outcome"] for h in action["hosts"]} == {"dispatched"}

    await eventually(dispatched)
    return action_id


def result(action_id: str, host: str, **fields: Any) -> ActionResult:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "outcome": HostOutcome.SUCCEEDED,
        "exit_code": 0,
        "started_at": now,
        "finished_at": now,
        "duration_s": 0.5,
        "output": f"{host}: restarted",
    }
    return ActionResult(action_id=action_id, host=host, **(values | fields))


async def answer(fleet: Fleet, *results: ActionResult) -> None:
    nc = await superuser_client(fleet.nats)
    try:
        for r in results:
            await nc.jetstream().publish(subjects.result_subject(r.host), encode(r))
    finally:
        await nc.close()


async def final_hosts(fleet: Fleet, action_id: str) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}

    async def all_final() -> bool:
        action = await fleet.get(f"/api/v1/actions/{action_id}")
        hosts.update({h["host"]: h for h in action["hosts"]})
        return all(h["outcome"] != "dispatched" for h in hosts.values())

    await eventually(all_final, timeout=30)
    return hosts


def unstorable(fleet: Fleet) -> int:
    assert fleet.server is not None
    return fleet.server.counters.snapshot().get("server.results_unstorable", 0)


async def test_a_value_the_database_refuses_is_stored_without_it_and_the_next_result_goes_on(
    fleet: Fleet,
) -> None:
    action_id = await sent_to_both(fleet)
    # An exit code no integer column holds (past 64 bits): both databases refuse it.
    await answer(
        fleet,
        result(action_id, "h1", exit_code=2**70, output="the real output"),
        result(action_id, "h2"),
    )
    hosts = await final_hosts(fleet, action_id)
    h1, h2 = hosts["h1"], hosts["h2"]
    assert (h1["outcome"], h1["exit_code"], h1["duration_s"]) == ("succeeded", None, 0.5)
    assert h1["output"].startswith(NOTE) and h1["output"].endswith(
        "; it is stored without its output]"
    )
    assert "the real output" not in h1["output"]
    assert (h2["outcome"], h2["exit_code"], h2["output"]) == ("succeeded", 0, "h2: restarted")
    assert unstorable(fleet) == 1
    audit = await fleet.get(f"/api/v1/audit?subject={action_id}&kind=action.host_result")
    [h1_entry] = [e for e in audit if e["detail"]["host"] == "h1"]
    assert h1_entry["detail"]["unstorable"] in h1["output"]


async def test_a_refused_result_keeps_its_outcome_and_exit_code(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ActionStore.record_results
    refused: list[str] = []

    async def refuse_h1_output(self: ActionStore, results: Batch, *args: Any) -> list[bool]:
        # As a database would: whatever batch h1's output comes in, alone or with h2's.
        for _, got, _ in results:
            if got.host == "h1" and got.output == "oops":
                refused.append(got.output)
                raise DataError("UPDATE action_hosts ...", {}, Exception("value too long"))
        return await record(self, results, *args)

    monkeypatch.setattr(ActionStore, "record_results", refuse_h1_output)
    action_id = await sent_to_both(fleet)
    await answer(
        fleet,
        result(action_id, "h1", outcome=HostOutcome.FAILED, exit_code=3, output="oops"),
        result(action_id, "h2"),
    )
    hosts = await final_hosts(fleet, action_id)
    assert refused and set(refused) == {"oops"}  # in its batch, then alone
    h1 = hosts["h1"]
    assert (h1["outcome"], h1["exit_code"]) == ("failed", 3)
    assert h1["output"] == (f"{NOTE}DataError: value too long); it is stored without its output]")
    assert hosts["h2"]["output"] == "h2: restarted"
    assert unstorable(fleet) == 1


async def test_a_result_the_database_was_too_busy_for_is_stored_whole_when_it_comes_again(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = ActionStore.record_results
    failures: list[str] = []

    async def busy_once(self: ActionStore, results: Batch, *args: Any) -> list[bool]:
        if not failures:
            failures.append(results[0][1].host)
            raise OperationalError("UPDATE action_hosts ...", {}, Exception("database is locked"))
        return await record(self, results, *args)

    monkeypatch.setattr(ActionStore, "record_results", busy_once)
    action_id = await sent_to_both(fleet)
    await answer(fleet, result(action_id, "h1"), result(action_id, "h2"))
    hosts = await final_hosts(fleet, action_id)
    assert failures == ["h1"]
    assert {h: (r["outcome"], r["output"]) for h, r in hosts.items()} == {
        "h1": ("succeeded", "h1: restarted"),
        "h2": ("succeeded", "h2: restarted"),
    }
    assert unstorable(fleet) == 0
