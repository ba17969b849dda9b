"""Overrides: a temporary target for maintenance, on the record, in force until it expires."""

from __future__ import annotations

from typing import Any

import pytest

from drover.model.access import Grant, Role
from tests.conftest import eventually, starts
from tests.e2e.test_actions import journal
from tests.harness import Fleet


@pytest.fixture
def fleet(fleet_on_each_database: Fleet) -> Fleet:
    """Every test here runs on SQLite and on PostgreSQL: the API is the system of record's face."""
    return fleet_on_each_database


async def placement(fleet: Fleet, service: str = "web") -> dict[str, Any]:
    app = await fleet.get("/api/v1/applications/shop")
    svc = next(s for s in app["services"] if s["name"] == service)
    return dict(svc["hosts"][0])


async def test_an_override_stops_a_service_until_it_expires(fleet: Fleet) -> None:
    assert fleet.http is not None
    await fleet.start_agent("h1")
    await eventually(lambda: len(starts(journal(fleet, "web"))) == 1)

    alice = await fleet.client_as("alice", Grant(Role.OPERATOR, ("shop",)))
    created = await alice.post(
        "/api/v1/overrides",
        json={
            "application": "shop",
            "service": "web",
            "host": "h1",
            "status": "stopped",
            "reason": "disk swap",
            "duration_s": 3,
        },
    )
    assert created.status_code == 201, created.text
    override = created.json()
    assert (override["status"], override["reason"], override["created_by"]) == (
        "stopped",
        "disk swap",
        "alice",
    )
    assert [o["id"] for o in await fleet.get("/api/v1/overrides")] == [override["id"]]

    async def stopped() -> bool:
        p = await placement(fleet)
        return bool(p["status"] == "stopped" and p["target"] == "stopped" and not p["drift"])

    await eventually(stopped)
    assert (await placement(fleet))["override"]["id"] == override["id"]
    assert (await placement(fleet, "worker"))["target"] == "running"  # only the one service

    # It expires by itself: the configured target is back, and so is the service.
    await eventually(lambda: len(starts(journal(fleet, "web"))) == 2, timeout=20)
    p = await placement(fleet)
    assert (p["target"], p["override"]) == ("running", None)
    assert await fleet.get("/api/v1/overrides") == []


async def test_a_cleared_override_ends_at_once(fleet: Fleet) -> None:
    assert fleet.http is not None
    await fleet.start_agent("h1")
    await eventually(lambda: len(starts(journal(fleet, "worker"))) == 1)
    created = await fleet.http.post(
        "/api/v1/overrides",
        json={"application": "shop", "status": "stopped", "reason": "freeze"},
    )
    assert created.json()["service"] is None  # the whole application

    async def worker_is(status: str) -> bool:
        return bool((await placement(fleet, "worker"))["status"] == status)

    await eventually(lambda: worker_is("stopped"))
    cleared = await fleet.http.delete(f"/api/v1/overrides/{created.json()['id']}")
    assert cleared.status_code == 204
    await eventually(lambda: worker_is("running"))
    again = await fleet.http.delete(f"/api/v1/overrides/{created.json()['id']}")
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"application": "nope", "status": "stopped", "reason": "x"}, 404, "no application"),
        (
            {"application": "shop", "service": "db", "status": "stopped", "reason": "x"},
            404,
            "has no service 'db'",
        ),
        ({"application": "shop", "status": "stopped", "reason": ""}, 422, "reason"),
        ({"application": "shop", "status": "paused", "reason": "x"}, 422, "status"),
        (
            {"application": "shop", "status": "stopped", "reason": "x", "duration_s": 0},
            422,
            "duration_s",
        ),
    ],
)
async def test_a_bad_override_gets_a_clear_4xx(
    fleet: Fleet, body: dict[str, object], status: int, detail: str
) -> None:
    assert fleet.http is not None
    response = await fleet.http.post("/api/v1/overrides", json=body)
    assert response.status_code == status
    assert detail in response.text
