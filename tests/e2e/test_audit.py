"""Every change through the API, and every decision of the server and result of an agent, is on
the audit trail with who, when, from where and the request's correlation id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from drover.model.access import Grant, Role
from tests.conftest import eventually
from tests.e2e.test_discovery import drover_cli
from tests.harness import Fleet


async def trail(fleet: Fleet, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    found: list[dict[str, Any]] = await fleet.get(f"/api/v1/audit?{query}")
    return found


async def test_an_action_is_on_record_from_request_to_result(fleet: Fleet) -> None:
    await fleet.start_agent("h1")
    alice = await fleet.client_as("alice", Grant(Role.OPERATOR, ("shop",)))
    response = await alice.post(
        "/api/v1/actions",
        json={"kind": "restart", "application": "shop", "service": "web"},
        headers={"X-Request-Id": "change-4711"},
    )
    assert response.status_code == 202
    assert response.headers["X-Request-Id"] == "change-4711"
    action_id = response.json()["id"]

    async def finished() -> list[str]:
        return [e["kind"] for e in await trail(fleet, subject=action_id)]

    await eventually(lambda: _has(finished(), "action.finished"))
    entries = {e["kind"]: e for e in await trail(fleet, subject=action_id)}
    assert set(entries) == {
        "action.requested",
        "action.batch_released",
        "action.dispatched",
        "action.host_result",
        "action.finished",
    }
    requested = entries["action.requested"]
    assert (requested["actor"], requested["source"], requested["correlation"]) == (
        "alice",
        "127.0.0.1",
        "change-4711",
    )
    assert requested["detail"]["services"] == ["web"]
    result = entries["action.host_result"]
    assert (result["actor"], result["detail"]["outcome"]) == ("agent:h1", "succeeded")
    assert entries["action.finished"]["detail"]["state"] == "succeeded"
    # the configuration it ran under is on record too
    [applied] = await trail(fleet, kind="config.applied")
    assert applied["actor"] == "drover" and applied["subject"].startswith("sha256:")


async def _has(got: Any, kind: str) -> bool:
    return kind in await got


async def test_overrides_and_bad_filters(fleet: Fleet) -> None:
    assert fleet.http is not None
    bob = await fleet.client_as("bob", Grant(Role.OPERATOR))
    carol = await fleet.client_as("carol", Grant(Role.OPERATOR))
    created = await bob.post(
        "/api/v1/overrides",
        json={"application": "shop", "status": "stopped", "reason": "disk swap"},
    )
    assert created.status_code == 201
    override_id = created.json()["id"]
    cleared = await carol.delete(f"/api/v1/overrides/{override_id}")
    assert cleared.status_code == 204
    entries = await trail(fleet, subject=override_id)
    assert [(e["kind"], e["actor"]) for e in entries] == [
        ("override.cleared", "carol"),
        ("override.set", "bob"),
    ]
    assert entries[1]["detail"]["reason"] == "disk swap"
    naive = await fleet.http.get("/api/v1/audit?since=2026-11-23T12:00:00")
    assert naive.status_code == 422 and "time zone" in naive.text
    assert (await fleet.http.get("/api/v1/audit?limit=0")).status_code == 422
    # a made-up correlation id that is not safe to keep is replaced, not stored
    odd = await fleet.http.get("/api/v1/audit", headers={"X-Request-Id": "a b\tc"})
    assert odd.headers["X-Request-Id"] != "a b\tc"

    shown = await asyncio.to_thread(drover_cli, fleet, "audit", "--kind", "override.", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [e["kind"] for e in json.loads(shown.stdout)] == ["override.cleared", "override.set"]
    table = await asyncio.to_thread(drover_cli, fleet, "audit", "--since", "1h")
    assert table.returncode == 0 and "override.set" in table.stdout and "bob" in table.stdout
    bad = await asyncio.to_thread(drover_cli, fleet, "audit", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr
