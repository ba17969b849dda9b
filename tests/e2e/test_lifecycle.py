"""A host's lifecycle: online → offline (missed heartbeats) → lost → decommissioned."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import nats.js.errors
import pytest

from drover.bus import subjects
from drover.server import fleet as fleet_module
from tests.busauth import superuser_client
from tests.conftest import eventually
from tests.e2e.test_discovery import drover_cli
from tests.harness import Fleet


async def host(fleet: Fleet, name: str) -> dict[str, Any]:
    found: dict[str, Any] = await fleet.get(f"/api/v1/hosts/{name}")
    return found


async def test_a_host_goes_offline_then_lost_and_is_decommissioned(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fleet.http is not None
    await fleet.start_agent("h1")
    await eventually(lambda: fleet.get("/api/v1/hosts"))
    online = await host(fleet, "h1")
    assert (online["state"], online["state_cause"]) == ("online", "heartbeats arrive")
    refused = await fleet.http.delete("/api/v1/hosts/h1")
    assert refused.status_code == 409 and "is online: stop its agent first" in refused.text

    # the agent stops (heartbeats every 1 s here): offline after 3 missed ones
    await fleet.running[-1].halt()

    async def offline() -> bool:
        return bool((await host(fleet, "h1"))["state"] == "offline")

    await eventually(offline)
    gone = await host(fleet, "h1")
    assert gone["state_cause"] == "missed 3 heartbeats (every 1 s)"
    assert gone["online"] is False
    monkeypatch.setattr(fleet_module, "LOST_AFTER", timedelta(seconds=4))

    async def lost() -> bool:
        return bool((await host(fleet, "h1"))["state"] == "lost")

    await eventually(lost)
    shown = await asyncio.to_thread(drover_cli, fleet, "hosts")
    assert "lost since" in shown.stdout

    done = await asyncio.to_thread(drover_cli, fleet, "host", "decommission", "h1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "host h1 decommissioned"
    await eventually(lambda: _absent(fleet))
    assert (await fleet.http.get("/api/v1/hosts/h1")).status_code == 404
    [entry] = await fleet.get("/api/v1/audit?kind=host.decommissioned")
    assert (entry["subject"], entry["detail"]["was"]) == ("h1", "lost")
    # Its bus key goes with it: should the host come back, it must enroll again.
    assert [k["state"] for k in await fleet.get("/api/v1/enrollments?host=h1")] == ["revoked"]
    assert await fleet.get("/api/v1/audit?kind=host.revoked&subject=h1")
    again = await asyncio.to_thread(drover_cli, fleet, "host", "decommission", "h1")
    assert again.returncode == 2 and "no host 'h1'" in again.stderr

    # It comes back: enrolled anew (a token made for it), it is written its desired state.
    await fleet.start_agent("h1")
    client = await superuser_client(fleet.nats)
    try:
        desired = await client.jetstream().key_value(subjects.DESIRED_BUCKET)

        async def written() -> bool:
            try:
                return bool((await desired.get(subjects.desired_key("h1"))).value)
            except nats.js.errors.KeyNotFoundError:
                return False

        await eventually(written)
    finally:
        await client.close()


async def _absent(fleet: Fleet) -> bool:
    return not any(h["host"] == "h1" for h in await fleet.get("/api/v1/hosts"))
