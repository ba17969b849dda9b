"""A running drover for end-to-end tests: a server and agent `h1` on a real nats-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from drover.bus.embedded import EmbeddedNats
from tests.harness import Fleet, fleet_of

Journaled = Callable[[str], tuple[list[str], Path]]


def shop_config(web: list[str], worker: list[str]) -> dict[str, str]:
    def flow(argv: list[str]) -> str:
        return "[" + ", ".join(f"'{a}'" for a in argv) + "]"

    return {
        "groups.yaml": "groups:\n  all:\n    hosts: ['*']\n",
        "hosts.yaml": "hosts:\n  h1:\n    labels: {env: test}\n",
        "apps/shop.yaml": (
            "applications:\n"
            "  shop:\n"
            "    owners: [team-shop]\n"
            "    environment: test\n"
            "    groups: [all]\n"
            "    services:\n"
            f"      web:\n        command: {flow(web)}\n        stop_timeout: 2\n"
            f"      worker:\n        command: {flow(worker)}\n        stop_timeout: 2\n"
        ),
    }


@contextlib.asynccontextmanager
async def shop_fleet(
    nats: EmbeddedNats, tmp: Path, journaled: Journaled, database_url: str | None = None
) -> AsyncIterator[Fleet]:
    web, _ = journaled("web")
    worker, _ = journaled("worker")
    async with fleet_of(nats, tmp, shop_config(web, worker)) as running:
        await running.start_server(database_url=database_url)
        yield running


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> AsyncIterator[Fleet]:
    async with shop_fleet(nats_server, tmp_path, journaled_service) as running:
        yield running


@pytest.fixture
async def fleet_on_each_database(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled, database_url: str
) -> AsyncIterator[Fleet]:
    """The same, once on SQLite and once on PostgreSQL (marked `postgres`)."""
    async with shop_fleet(nats_server, tmp_path, journaled_service, database_url) as running:
        yield running
