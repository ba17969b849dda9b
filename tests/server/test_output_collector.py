"""When a host's output stream ends: once it is final and its chunks are in, or a grace period
after it became final when some never come; and what the live feed makes of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.bus.connection import Bus, BusSettings
from drover.model.action import HostOutcome
from drover.ops.counters import Counters
from drover.server.output_collector import Changes, OutputCollector
from drover.server.output_feed import FeedEvent, feed, parse_event_id
from drover.store.actions import ActionStore, HostResult
from drover.store.database import open_database
from drover.store.output import OutputStore
from tests.store.test_output_store import T0, command_action


@dataclass
class StoppedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(database_url)
    await ActionStore(engine).create(command_action())
    yield engine
    await engine.dispose()


async def finish(engine: AsyncEngine, host: str, chunks: int, outcome: HostOutcome) -> None:
    result = HostResult(host, outcome, 0, T0, T0, 1.0, "", output_chunks=chunks)
    assert await ActionStore(engine).record_result("a1", result, T0)


def collector(engine: AsyncEngine, clock: StoppedClock) -> OutputCollector:
    unconnected = Bus(BusSettings(), Counters())  # closing reads only the database
    return OutputCollector(OutputStore(engine), unconnected, clock, timedelta(seconds=30))


async def ends(store: OutputStore) -> dict[str, dict[str, object]]:
    return {row.host: json.loads(row.data) for row in await store.read("a1", 0) if row.seq == 0}


async def test_a_stream_ends_when_the_host_is_final_and_every_chunk_is_in(
    engine: AsyncEngine,
) -> None:
    clock = StoppedClock(T0)
    output = collector(engine, clock)
    await output.store.append("a1", "h1", 1, b"one\n", T0)
    assert await output.close_ready() == 0  # h1 still running
    await finish(engine, "h1", 2, HostOutcome.SUCCEEDED)
    assert await output.close_ready() == 0  # chunk 2 not in yet
    await output.store.append("a1", "h1", 2, b"two\n", T0)
    assert await output.close_ready() == 1
    assert await ends(output.store) == {
        "h1": {"host": "h1", "outcome": "succeeded", "exit_code": 0, "chunks": 2, "missing": 0}
    }
    assert await output.close_ready() == 0


async def test_chunks_that_never_come_are_given_up_on_after_a_grace_and_said_missing(
    engine: AsyncEngine,
) -> None:
    clock = StoppedClock(T0)
    output = collector(engine, clock)
    await finish(engine, "h2", 3, HostOutcome.FAILED)
    await output.store.append("a1", "h2", 1, b"partial", T0)
    clock.at = T0 + timedelta(seconds=29)
    assert await output.close_ready() == 0
    clock.at = T0 + timedelta(seconds=30)
    assert await output.close_ready() == 1
    assert (await ends(output.store))["h2"]["missing"] == 2


async def test_the_feed_follows_what_is_stored_and_ends_after_the_last_host(
    engine: AsyncEngine,
) -> None:
    clock = StoppedClock(T0)
    output = collector(engine, clock)
    seen: list[FeedEvent] = []

    async def read() -> None:
        async for event in feed(output.store, output.changes, "a1", ["h1", "h2"], poll=5):
            seen.append(event)

    reader = asyncio.create_task(read())
    await output.store.append("a1", "h1", 1, "héllo\n".encode(), T0)
    output.changes.notify()  # as the collector does: the reader looks at once, not in 5 s
    await asyncio.sleep(0.2)
    assert seen == [FeedEvent("output", "1", {"host": "h1", "seq": 1, "text": "héllo\n"})]
    for host in ("h1", "h2"):
        await finish(engine, host, 1 if host == "h1" else 0, HostOutcome.SUCCEEDED)
    await output.close_ready()
    await asyncio.wait_for(reader, 5)
    assert [e.kind for e in seen] == ["output", "end", "end", "done"]
    assert seen[-1] == FeedEvent("done", None, {"hosts": 2})


async def test_a_feed_stops_when_the_server_closes_and_keeps_readers_alive_meanwhile(
    engine: AsyncEngine,
) -> None:
    changes = Changes()
    store = OutputStore(engine)
    seen: list[FeedEvent] = []

    async def read() -> None:
        async for event in feed(store, changes, "a1", ["h1"], poll=0.05, keepalive=0.1):
            seen.append(event)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.35)
    changes.close()
    await asyncio.wait_for(reader, 5)
    assert seen and all(e.kind == "" for e in seen)  # keep-alives only, and no `done`
    assert FeedEvent("").encode() == b": keep-alive\n\n"


def test_an_event_id_is_a_position_this_feed_sent() -> None:
    assert [parse_event_id(v) for v in (None, "", "0", " 17 ", "x", "-1", "9" * 20)] == [
        0,
        0,
        0,
        17,
        None,
        None,
        None,
    ]
    # Digits to str.isdigit() but not ids: "²" int() refuses, "٣" it would read as 3.
    assert [parse_event_id(v) for v in ("²", "1²", "٣", "１")] == [None] * 4
    event = FeedEvent("output", "3", {"host": "h1", "seq": 1, "text": "a\nb"})
    assert event.encode() == (
        b'event: output\nid: 3\ndata: {"host": "h1", "seq": 1, "text": "a\\nb"}\n\n'
    )
