"""A connected Bus with a WORK stream (`work.>`), for the fetch and watch loop tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drover.bus.connection import Bus
from drover.bus.embedded import EmbeddedNats
from drover.ops.counters import Counters
from tests.busauth import bus_settings


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    bus = Bus(bus_settings(nats_server), Counters())
    await bus.connect()
    await bus.js.add_stream(name="WORK", subjects=["work.>"])
    yield bus
    await bus.close()
