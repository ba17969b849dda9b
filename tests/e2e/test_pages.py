"""The endpoints the GUI's pages read: the overview, an application's grid, the host list with
filters and paging, and actions filtered — against a running fleet, with hosts in known states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drover.bus.embedded import EmbeddedNats
from drover.model.access import Grant, Role
from drover.model.status import Convergence, ServiceStatus
from tests.conftest import eventually
from tests.e2e.conftest import Journaled, shop_config
from tests.harness import Fleet, fleet_of
from tests.reports import report

RUNNING, STOPPED, FAILED = ServiceStatus.RUNNING, ServiceStatus.STOPPED, ServiceStatus.FAILED
OBSERVED = Convergence.OBSERVED


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled, database_url: str
) -> AsyncIterator[Fleet]:
    """shop on h1 (a real agent) and on r1..r3 (reported: r1's web stopped, r2's failed, r3 at
    target), and on r9, in the config but never reported; billing on db-1 alone."""
    web, _ = journaled_service("web")
    worker, _ = journaled_service("worker")
    config = shop_config(web, worker)
    config["groups.yaml"] = "groups:\n  all:\n    hosts: ['h*', 'r*']\n"
    config["hosts.yaml"] = (
        "hosts:\n  h1:\n    labels: {env: test}\n  r1:\n    labels: {env: test, dc: zrh}\n"
        "  r9:\n    labels: {dc: zrh}\n"
    )
    config["apps/billing.yaml"] = (
        "applications:\n  billing:\n    description: Invoices\n    owners: [team-billing]\n"
        "    environment: prod\n    hosts: ['db-*']\n    services:\n"
        "      api: {command: [sleep, '3600']}\n"
        "    commands:\n      count:\n        argv: [seq, '{n}']\n        description: Count\n"
        "        params:\n          n: {type: integer, minimum: 1, maximum: 9, default: 3}\n"
    )
    async with fleet_of(nats_server, tmp_path, config) as running:
        await running.start_server(database_url=database_url)
        await running.start_agent("h1")
        url = nats_server
        await report(url, "r1", {("shop", "web"): (STOPPED, OBSERVED), ("shop", "worker"): RUNNING})
        await report(url, "r2", {("shop", "web"): FAILED, ("shop", "worker"): RUNNING})
        await report(url, "r3", {("shop", "web"): RUNNING, ("shop", "worker"): RUNNING})
        await report(url, "db-1", {("billing", "api"): RUNNING})
        yield running


def shop_of(overview: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in overview["applications"] if a["name"] == "shop")


async def settled(fleet: Fleet) -> dict[str, Any]:
    """The overview once h1 runs both services and every reported host is in."""

    async def ready() -> bool:
        overview = await fleet.get("/api/v1/overview")
        return bool(shop_of(overview)["counts"]["ok"] == 6 and overview["hosts"]["total"] == 5)

    await eventually(ready)
    overview: dict[str, Any] = await fleet.get("/api/v1/overview")
    return overview


async def test_the_overview_counts_every_placement_by_how_it_stands(fleet: Fleet) -> None:
    overview = await settled(fleet)
    shop = shop_of(overview)
    # h1 both ok; r1 web stopped (drifted); r2 web failed; r3 both ok; r9 never reported.
    assert shop["counts"] == {"ok": 6, "drifted": 1, "failed": 1, "unknown": 2}
    assert (shop["services"], shop["hosts"]) == (2, 5)
    billing = next(a for a in overview["applications"] if a["name"] == "billing")
    assert billing["counts"] == {"ok": 1, "drifted": 0, "failed": 0, "unknown": 0}
    assert overview["environments"] == ["prod", "test"]
    assert overview["hosts"] == {"online": 5, "offline": 0, "lost": 0, "total": 5}


async def test_the_overview_filters_by_text_owner_status_and_label(fleet: Fleet) -> None:
    await settled(fleet)

    async def names(query: str) -> list[str]:
        found = await fleet.get(f"/api/v1/overview?{query}")
        return [a["name"] for a in found["applications"]]

    assert await names("q=INVOICE") == ["billing"]  # the description, in any case
    assert await names("owner=team-shop") == ["shop"]
    assert await names("status=failed") == ["shop"]
    assert await names("environment=prod") == ["billing"]
    labelled = await fleet.get("/api/v1/overview?label=dc=zrh")
    # Only r1 (drifted web) and r9 (never reported) carry dc=zrh.
    assert shop_of(labelled)["counts"] == {"ok": 1, "drifted": 1, "failed": 0, "unknown": 2}
    assert labelled["hosts"]["total"] == 1  # r9 never reported: no lifecycle to count
    bad = await fleet.http.get("/api/v1/overview?label=dc") if fleet.http else None
    assert bad is not None and bad.status_code == 422
    assert "'dc' is not key=value" in bad.json()["detail"]


async def test_a_scoped_viewer_sees_only_their_applications_and_hosts(fleet: Fleet) -> None:
    await settled(fleet)
    viewer = await fleet.client_as("vera", Grant(Role.VIEWER, ("billing",)))
    overview = (await viewer.get("/api/v1/overview")).json()
    assert [a["name"] for a in overview["applications"]] == ["billing"]
    assert overview["hosts"]["total"] == 1  # db-1 only
    grid = await viewer.get("/api/v1/applications/shop/grid")
    assert grid.status_code == 403


async def test_the_grid_pages_hosts_with_a_cell_per_service(fleet: Fleet) -> None:
    await settled(fleet)
    grid = await fleet.get("/api/v1/applications/shop/grid?limit=2")
    assert [s["name"] for s in grid["services"]] == ["web", "worker"]
    assert grid["total"] == 5 and grid["offset"] == 0
    assert [r["host"] for r in grid["rows"]] == ["h1", "r1"]
    r1 = grid["rows"][1]
    web = r1["cells"][0]
    assert (web["status"], web["target"], web["drift"], web["bucket"]) == (
        "stopped",
        "running",
        True,
        "drifted",
    )
    assert grid["counts"] == {"ok": 6, "drifted": 1, "failed": 1, "unknown": 2}

    page2 = await fleet.get("/api/v1/applications/shop/grid?limit=2&offset=2")
    assert [r["host"] for r in page2["rows"]] == ["r2", "r3"]
    failed = await fleet.get("/api/v1/applications/shop/grid?status=failed")
    assert [r["host"] for r in failed["rows"]] == ["r2"]
    unknown = await fleet.get("/api/v1/applications/shop/grid?status=unknown")
    assert [(r["host"], r["state"], r["online"]) for r in unknown["rows"]] == [("r9", None, False)]
    assert (await fleet.get("/api/v1/applications/shop/grid?q=r"))["total"] == 4


async def test_the_grid_lists_commands_with_their_parameters(fleet: Fleet) -> None:
    grid = await fleet.get("/api/v1/applications/billing/grid")
    [count] = grid["commands"]
    assert (count["name"], count["description"]) == ("count", "Count")
    [n] = count["params"]
    assert (n["name"], n["type"], n["minimum"], n["maximum"], n["default"]) == (
        "n",
        "integer",
        1,
        9,
        3,
    )
    assert fleet.http is not None
    missing = await fleet.http.get("/api/v1/applications/nope/grid")
    assert missing.status_code == 404


async def test_the_host_list_filters_and_pages_with_the_total_in_a_header(fleet: Fleet) -> None:
    await settled(fleet)
    assert fleet.http is not None
    page = await fleet.http.get("/api/v1/hosts", params={"limit": 2, "offset": 1, "brief": True})
    assert page.headers["X-Total-Count"] == "5"
    hosts = page.json()
    assert [h["host"] for h in hosts] == ["h1", "r1"]  # after db-1, in id order
    assert all(h["services"] == [] for h in hosts)
    r1 = hosts[1]
    assert r1["labels"] == {"env": "test", "dc": "zrh"}
    # By its agent's judgement: web is reported as drifted under observe.
    assert r1["counts"] == {"ok": 1, "drifted": 1, "failed": 0, "unknown": 0}

    async def hosts_of(**params: Any) -> list[str]:
        assert fleet.http is not None
        found = await fleet.http.get("/api/v1/hosts", params=params)
        assert found.status_code == 200, found.text
        return [h["host"] for h in found.json()]

    assert await hosts_of(q="r") == ["r1", "r2", "r3"]
    assert await hosts_of(label="dc=zrh") == ["r1"]
    assert await hosts_of(application="billing") == ["db-1"]
    assert await hosts_of(state="offline") == []
    assert (await fleet.http.get("/api/v1/hosts", params={"state": "gone"})).status_code == 422
    full = await fleet.get("/api/v1/hosts?q=r2")
    assert [s["status"] for s in full[0]["services"]] == ["failed", "running"]
    assert full[0]["counts"]["failed"] == 1


async def test_actions_filter_by_application_kind_state_and_requester(fleet: Fleet) -> None:
    await settled(fleet)
    olga = await fleet.client_as("olga", Grant(Role.OPERATOR))
    made = await olga.post(
        "/api/v1/actions",
        json={"kind": "restart", "application": "shop", "service": "worker", "hosts": ["h1"]},
    )
    assert made.status_code == 202, made.text
    assert fleet.http is not None
    counted = await fleet.http.post(
        "/api/v1/actions",
        json={"kind": "command", "application": "billing", "command": "count", "hosts": ["db-1"]},
    )
    assert counted.status_code == 202, counted.text

    async def ids(**params: Any) -> list[str]:
        assert fleet.http is not None
        found = await fleet.http.get("/api/v1/actions", params=params)
        assert found.status_code == 200, found.text
        return [a["id"] for a in found.json()]

    restart, command = made.json()["id"], counted.json()["id"]
    assert await ids(application="shop") == [restart]
    assert await ids(kind="command") == [command]
    assert await ids(requested_by="olga") == [restart]

    async def succeeded() -> bool:
        return await ids(state="succeeded") == [restart]

    await eventually(succeeded)
    assert await ids(state="pending-approval") == []
    bad = await fleet.http.get("/api/v1/actions", params={"state": "done"})
    assert bad.status_code == 422


async def test_a_scoped_caller_sees_only_their_services_on_a_shared_host(fleet: Fleet) -> None:
    await settled(fleet)
    await report(fleet.nats, "r3", {("billing", "api"): RUNNING})  # r3 now runs both
    viewer = await fleet.client_as("vera", Grant(Role.VIEWER, ("billing",)))

    async def r3() -> dict[str, Any] | None:
        found = await viewer.get("/api/v1/hosts/r3")
        return found.json() if found.status_code == 200 else None

    await eventually(r3)
    seen = await r3()
    assert seen is not None
    assert [s["application"] for s in seen["services"]] == ["billing"]
    # shop's two services there are neither listed nor counted.
    assert seen["counts"] == {"ok": 1, "drifted": 0, "failed": 0, "unknown": 0}
    listed = (await viewer.get("/api/v1/hosts", params={"brief": True})).json()
    assert [h["host"] for h in listed] == ["db-1", "r3"]
    # Which hosts run an application she may not read is not hers to ask.
    asked = await viewer.get("/api/v1/hosts", params={"application": "shop"})
    assert asked.status_code == 403


async def test_placements_follow_hosts_joining_and_the_config(fleet: Fleet) -> None:
    await settled(fleet)
    await report(fleet.nats, "r4", {("shop", "web"): RUNNING})

    async def hosts_of_shop() -> int:
        return int((await fleet.get("/api/v1/applications/shop/grid"))["total"])

    await eventually(lambda: _equal(hosts_of_shop(), 6))
    groups = fleet.config_dir / "groups.yaml"
    groups.write_text("groups:\n  all:\n    hosts: ['r*']\n")  # h1 leaves shop
    await eventually(lambda: _equal(hosts_of_shop(), 5))


async def _equal(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_filters_that_reach_the_database_refuse_a_nul(fleet: Fleet) -> None:
    assert fleet.http is not None
    for url, name in (
        ("/api/v1/actions", "application"),
        ("/api/v1/actions", "requested_by"),
        ("/api/v1/audit", "actor"),
        ("/api/v1/audit", "subject"),
    ):
        refused = await fleet.http.get(url, params={name: "shop\x00"})
        assert refused.status_code == 422, (url, name, refused.text)
