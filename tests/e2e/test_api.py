"""The REST API: what it answers, and clear 4xx answers for bad requests."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import eventually
from tests.e2e.test_actions import service_pid
from tests.harness import Fleet


@pytest.fixture
def fleet(fleet_on_each_database: Fleet) -> Fleet:
    """Every test here runs on SQLite and on PostgreSQL: the API is the system of record's face."""
    return fleet_on_each_database


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"kind": "restart", "application": "nope"}, 404, "no application 'nope'"),
        (
            {"kind": "restart", "application": "shop", "service": "db"},
            404,
            "application 'shop' has no service 'db'",
        ),
        (
            {"kind": "restart", "application": "shop", "hosts": ["h9"]},
            404,
            "application 'shop' does not run on host 'h9'",
        ),
        ({"kind": "explode", "application": "shop"}, 422, "kind"),
        ({"kind": "restart"}, 422, "application"),
        ({"kind": "restart", "application": "Bad.Name"}, 422, "application"),
        ({"kind": "restart", "application": "shop", "colour": "red"}, 422, "colour"),
        ({"kind": "restart", "application": "shop", "hosts": []}, 422, "hosts"),
    ],
)
async def test_a_bad_action_request_gets_a_clear_4xx(
    fleet: Fleet, body: dict[str, object], status: int, detail: str
) -> None:
    assert fleet.http is not None
    response = await fleet.http.post("/api/v1/actions", json=body)
    assert response.status_code == status
    assert detail in response.text


async def test_a_body_that_is_not_json_gets_a_422(fleet: Fleet) -> None:
    assert fleet.http is not None
    response = await fleet.http.post(
        "/api/v1/actions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/v1/applications/nope", "no application 'nope'"),
        ("/api/v1/actions/0000", "no action '0000'"),
        ("/api/v1/hosts/h9", "no host 'h9'"),
    ],
)
async def test_unknown_things_are_404_with_a_reason(fleet: Fleet, path: str, detail: str) -> None:
    assert fleet.http is not None
    response = await fleet.http.get(path)
    assert (response.status_code, response.json()) == (404, {"detail": detail})


async def test_applications_show_current_target_and_drift_per_service(fleet: Fleet) -> None:
    before_agent = await fleet.get("/api/v1/applications/shop")
    assert [
        (s["name"], s["target"], s["drift"], s["hosts"][0]["status"])
        for s in before_agent["services"]
    ] == [
        ("web", "running", True, None),
        ("worker", "running", True, None),
    ]
    await fleet.start_agent("h1")
    await eventually(lambda: service_pid(fleet, "shop", "worker"))
    await eventually(lambda: service_pid(fleet, "shop", "web"))
    app = await fleet.get("/api/v1/applications/shop")
    assert app["drift"] is False
    assert (app["name"], app["environment"], app["owners"]) == ("shop", "test", ["team-shop"])


async def test_info_health_config_and_docs_answer(fleet: Fleet) -> None:
    assert fleet.http is not None
    info = await fleet.get("/info")
    assert info["version"] == "0.1.0" and info["commit"]
    assert datetime.fromisoformat(info["now"]) >= datetime.fromisoformat(info["started_at"])
    assert info["uptime_s"] >= 0
    assert await fleet.get("/healthz") == {
        "status": "ok",
        "bus_connected": True,
        "config_active": True,
        "draining": False,
    }
    config = await fleet.get("/api/v1/config")
    assert config["active_revision"].startswith("sha256:")
    assert config["last_error"] is None
    assert "folder" in config["source"]
    docs = await fleet.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = await fleet.get("/openapi.json")
    assert "/api/v1/actions" in spec["paths"]
