"""A running drover for end-to-end tests: a server and agent `h1` on a real nats-server."""

from __future__ import annotations

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


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, tmp_path: Path, journaled_service: Journaled
) -> AsyncIterator[Fleet]:
    web, _ = journaled_service("web")
    worker, _ = journaled_service("worker")
    async with fleet_of(nats_server, tmp_path, shop_config(web, worker)) as running:
        await running.start_server()
        yield running
