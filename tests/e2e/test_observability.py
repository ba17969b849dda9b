"""What an operator sees of a running drover: Prometheus metrics of the server and the agent,
the connected agents, the server's tasks, and one correlation id along an action's path."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from drover.bus.embedded import free_port
from drover.model.access import Grant, Role
from drover.ops.logging import JsonFormatter, with_correlation
from tests.conftest import eventually
from tests.e2e.test_actions import run_action
from tests.harness import Fleet


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and labels (parsed by the
    client library's own parser: the text must be valid)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_server_metrics_show_the_fleet_the_bus_and_the_actions(fleet: Fleet) -> None:
    await fleet.start_agent("h1")
    assert fleet.http is not None

    async def both_running() -> bool:
        scraped = samples((await fleet.http.get("/metrics")).text)  # type: ignore[union-attr]
        return value(scraped, "drover_services", status="ok") == 2

    await eventually(both_running)
    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})
    assert action["state"] == "succeeded"

    async def action_observed() -> bool:
        # The API calls an action succeeded once its hosts have; the dispatcher records it
        # ended at its next look.
        scraped = samples((await fleet.http.get("/metrics")).text)  # type: ignore[union-attr]
        key = (
            "drover_action_duration_seconds_count",
            (("kind", "restart"), ("outcome", "succeeded")),
        )
        return scraped.get(key) == 1

    await eventually(action_observed)
    response = await fleet.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    assert value(found, "drover_hosts", lifecycle="online") == 1
    assert value(found, "drover_hosts", lifecycle="lost") == 0
    assert value(found, "drover_services", status="failed") == 0
    assert value(found, "drover_bus_connected") == 1
    assert value(found, "drover_asyncio_tasks") > 10
    assert value(found, "process_resident_memory_bytes") > 10_000_000
    assert value(found, "drover_build_info", role="server", version=_version(found)) == 1
    assert value(found, "drover_config_failing") == 0
    assert value(found, "drover_bus_messages_received_total", consumer="server-results") == 1
    assert value(found, "drover_bus_messages_published_total", kind="action") == 1
    assert value(found, "drover_consumer_pending_messages", consumer="server-results") == 0
    assert (
        value(
            found,
            "drover_action_duration_seconds_count",
            kind="restart",
            outcome="succeeded",
        )
        == 1
    )
    assert value(found, "drover_server_dispatch_failures_total") == 0  # there from zero
    revisions = [labels for (name, labels) in found if name == "drover_config_active_info"]
    assert len(revisions) == 1


def _version(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    [labels] = [dict(labels) for (name, labels) in found if name == "drover_build_info"]
    return labels["version"]


async def test_metrics_connections_and_tasks_are_for_those_allowed(fleet: Fleet) -> None:
    anonymous = fleet.client_with_token(None)
    scoped = await fleet.client_as("sam", Grant(Role.VIEWER, ("shop",)))
    viewer = await fleet.client_as("vera", Grant(Role.VIEWER))
    for path in ("/metrics", "/connections", "/debug/tasks"):
        assert (await anonymous.get(path)).status_code == 401, path
        assert (await scoped.get(path)).status_code == 403, path  # a part of the fleet only
    assert (await viewer.get("/metrics")).status_code == 200
    assert (await viewer.get("/connections")).status_code == 200
    refused = await viewer.get("/debug/tasks")
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]


async def test_connections_list_the_agents_connected_now(fleet: Fleet) -> None:
    await fleet.start_agent("h1")
    await fleet.start_agent("h2")
    assert fleet.http is not None

    async def two() -> bool:
        response = await fleet.http.get("/connections", params={"limit": 1})  # type: ignore[union-attr]
        return response.headers["X-Total-Count"] == "2"

    await eventually(two)
    first = await fleet.http.get("/connections", params={"limit": 1})
    [h1] = first.json()
    assert h1["host"] == "h1"
    assert h1["address"] == "127.0.0.1"
    assert h1["bus_server"] == f"127.0.0.1:{fleet.nats.port}"
    assert h1["agent_version"]
    assert h1["connected_since"] is not None
    page2 = await fleet.get("/connections?offset=1")
    assert [c["host"] for c in page2] == ["h2"]
    assert (await fleet.http.get("/connections", params={"limit": 0})).status_code == 422


async def test_debug_tasks_show_where_each_loop_waits(fleet: Fleet) -> None:
    tasks = await fleet.get("/debug/tasks")
    by_name = {task["name"]: task for task in tasks}
    assert {"server.dispatch", "server.results", "server.fleet"} <= by_name.keys()
    assert "forever" in by_name["server.dispatch"]["coroutine"]
    assert "dispatch" in by_name["server.dispatch"]["stack"]


async def test_the_agent_serves_its_own_metrics(fleet: Fleet) -> None:
    port = free_port()
    await fleet.start_agent("h1", metrics_listen=("127.0.0.1", port))
    action = await run_action(fleet, {"kind": "restart", "application": "shop", "service": "web"})
    assert action["state"] == "succeeded"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as local:
        found = samples((await local.get("/metrics")).text)
        assert (await local.get("/")).status_code == 404
        assert (await local.post("/metrics")).status_code == 404
    assert value(found, "drover_agent_actions_executed_total") == 1
    assert value(found, "drover_agent_services", status="running") == 2
    assert value(found, "drover_bus_messages_published_total", kind="result") == 1
    assert value(found, "drover_bus_messages_published_total", kind="drover-state") >= 3
    assert value(found, "drover_bus_messages_received_total", consumer="agent-h1") == 1
    assert (
        value(found, "drover_action_duration_seconds_count", kind="restart", outcome="succeeded")
        == 1
    )
    assert value(found, "drover_agent_refused_requests_total") == 0
    assert value(found, "drover_bus_connected") == 1
    assert value(found, "drover_asyncio_tasks") > 5  # counted from the agent's own loop
    assert not [name for (name, _) in found if name.startswith("drover_server_")]


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(with_correlation)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_one_correlation_id_from_the_request_to_the_agents_result(
    fleet: Fleet, captured: Captured
) -> None:
    await fleet.start_agent("h1")
    assert fleet.http is not None
    created = await fleet.http.post(
        "/api/v1/actions",
        json={"kind": "restart", "application": "shop", "service": "web"},
        headers={"X-Request-Id": "req-4711"},
    )
    assert created.status_code == 202
    assert created.headers["X-Request-Id"] == "req-4711"
    action_id = created.json()["id"]

    async def finished() -> bool:
        return bool((await fleet.get(f"/api/v1/actions/{action_id}"))["state"] == "succeeded")

    await eventually(finished)

    async def on_the_trail() -> bool:
        # action.finished comes with the dispatcher's next look after the last result.
        audit = await fleet.get("/api/v1/audit?correlation=req-4711&limit=100")
        kinds = {entry["kind"] for entry in audit}
        return {"action.requested", "action.host_result", "action.finished"} <= kinds

    await eventually(on_the_trail)
    about = [
        r for r in captured.records if r.name.startswith("drover.") and action_id in r.getMessage()
    ]
    loggers = {r.name for r in about}
    # the request, the dispatcher, the agent's run, and the server taking the result
    assert {"drover.server.orchestrator", "drover.agent.executor"} <= loggers
    assert [r.getMessage() for r in about if r.correlation != "req-4711"] == []  # type: ignore[attr-defined]
    taken = [r for r in about if "succeeded on h1" in r.getMessage()]
    assert taken, "the server logs the result it took"

    line = json.loads(JsonFormatter().format(about[0]))
    assert line["correlation"] == "req-4711"
    assert line["logger"] == about[0].name
    assert line["time"].endswith("Z")
    assert action_id in line["message"]


DASHBOARD = Path(__file__).parents[2] / "packaging" / "grafana" / "drover.json"
_METRIC = re.compile(r"\b((?:drover|process)_[a-z_]+)")


async def test_the_grafana_dashboard_reads_only_what_drover_serves(fleet: Fleet) -> None:
    port = free_port()
    await fleet.start_agent("h1", metrics_listen=("127.0.0.1", port))
    assert fleet.http is not None
    texts = [(await fleet.http.get("/metrics")).text]
    async with httpx.AsyncClient() as local:
        texts.append((await local.get(f"http://127.0.0.1:{port}/metrics")).text)
    served = {family.name for text in texts for family in text_string_to_metric_families(text)}
    panels = json.loads(DASHBOARD.read_text())
    queries = json.dumps(panels["panels"]) + json.dumps(panels["templating"])
    read = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in _METRIC.findall(queries)}
    assert len(read) > 30
    assert sorted(read - served) == []


async def test_an_agent_whose_metrics_port_is_taken_runs_without_it(fleet: Fleet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = await fleet.start_agent("h1", metrics_listen=("127.0.0.1", port))
        action = await run_action(
            fleet, {"kind": "restart", "application": "shop", "service": "web"}
        )
    assert action["state"] == "succeeded"
    assert agent.executor.executions == 1
