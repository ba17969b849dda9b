"""GET /api/v1/events: what changed, pushed to the GUI as it happens, seen per caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from drover.model.access import Grant, Role
from drover.model.status import ServiceStatus
from drover.server.api import event_routes
from tests.conftest import eventually
from tests.harness import Fleet
from tests.reports import report

Event = tuple[str, dict[str, Any]]


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> Event:
        name, data = "", ""
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
                elif line == "" and name:
                    return name, json.loads(data)
        raise AssertionError("the stream ended")

    async def until(self, wanted: str, timeout: float = 10.0, **contains: str) -> dict[str, Any]:
        """The next `change` whose lists hold every value of `contains` (key: list name; a
        list that is null says it may hold any)."""
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.next(timeout)
                if name == wanted and all(
                    data[k] is None or v in data[k] for k, v in contains.items()
                ):
                    return data


@contextlib.asynccontextmanager
async def events(client: httpx.AsyncClient) -> AsyncIterator[Stream]:
    async with client.stream("GET", "/api/v1/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        name, hello = await stream.next()
        assert name == "hello" and "server_time" in hello
        yield stream


async def test_changes_arrive_by_topic_with_what_they_touch(fleet: Fleet) -> None:
    assert fleet.http is not None
    await fleet.start_agent("h1")
    await eventually(lambda: fleet.get("/api/v1/applications/shop"))
    async with events(fleet.http) as stream:
        override = await fleet.http.post(
            "/api/v1/overrides",
            json={"application": "shop", "service": "web", "status": "stopped", "reason": "x"},
        )
        assert override.status_code == 201, override.text
        # The override (audit) and the service stopping on h1 (the state bucket).
        change = await stream.until("change", topics="fleet", applications="shop", hosts="h1")
        assert "fleet" in change["topics"]

        action = await fleet.http.post(
            "/api/v1/actions", json={"kind": "restart", "application": "shop", "service": "worker"}
        )
        assert action.status_code == 202, action.text
        action_id = action.json()["id"]
        change = await stream.until("change", topics="actions", actions=action_id)
        assert "audit" in change["topics"]


async def test_a_scoped_caller_hears_only_of_what_they_may_read(fleet: Fleet) -> None:
    viewer = await fleet.client_as("vera", Grant(Role.VIEWER, ("billing",)))
    async with events(viewer) as stream:
        await report(fleet.nats, "h7", {("shop", "web"): ServiceStatus.RUNNING})
        change = await stream.until("change", topics="fleet")
        # h7's record is news to every application on it: null, "refetch"; its host is not
        # one vera may see (nothing she may read runs there).
        assert change["applications"] in ([], None) and change["hosts"] == []


async def test_the_stream_ends_when_its_token_is_revoked(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_routes, "KEEPALIVE_S", 0.3)
    assert fleet.server is not None and fleet.server.access is not None
    accounts = fleet.server.access.accounts
    olga = await fleet.client_as("olga", Grant(Role.VIEWER))
    async with events(olga) as stream:
        [token] = await accounts.tokens.of("olga")
        await accounts.revoke_token(token.id, by="test")
        ended = await stream.until("end")
        assert "revoked" in ended["reason"]


async def test_without_credentials_there_is_no_stream(fleet: Fleet) -> None:
    anonymous = fleet.client_with_token(None)
    refused = await anonymous.get("/api/v1/events")
    assert refused.status_code == 401
