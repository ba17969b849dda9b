"""Commands' output in the system of record, on SQLite and PostgreSQL: each chunk stored once,
positions without gaps however many writers, a cap with a marker, streams that end once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.bus.messages import ActionResult
from drover.model.action import ActionKind, HostOutcome
from drover.model.command import CommandInvocation
from drover.store.actions import Action, ActionStore, HostResult
from drover.store.database import open_database
from drover.store.output import END, TRUNCATED, OutputStore, Stored, capped

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIMIT = 100


def command_action(action_id: str = "a1", hosts: tuple[str, ...] = ("h1", "h2")) -> Action:
    return Action(
        id=action_id,
        kind=ActionKind.COMMAND,
        application="shop",
        services=[],
        requested_by="alice",
        created_at=T0,
        deadline=T0 + timedelta(minutes=10),
        hosts=[
            HostResult(h, HostOutcome.PENDING, None, None, None, None, "", sent_at=T0)
            for h in hosts
        ],
        command=CommandInvocation(
            name="flush",
            params={"region": "eu"},
            argv=["flush", "eu"],
            run_as=None,
            timeout_s=60,
            output_limit=LIMIT,
        ),
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def stores(engine: AsyncEngine) -> tuple[ActionStore, OutputStore]:
    actions = ActionStore(engine)
    await actions.create(command_action())
    return actions, OutputStore(engine)


async def test_the_action_records_its_command_and_each_host_its_chunk_count(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    actions, _ = stores
    assert await actions.get("a1") == command_action()
    [dispatch, _] = await actions.undispatched()
    assert dispatch.command == command_action().command
    result = HostResult("h1", HostOutcome.SUCCEEDED, 0, T0, T0, 1.0, "ok", output_chunks=3)
    assert await actions.record_result("a1", result, T0)
    found = await actions.get("a1")
    assert found is not None and found.hosts[0].output_chunks == 3


async def test_a_chunk_is_stored_once_however_often_it_comes(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    _, output = stores
    assert await output.append("a1", "h1", 1, b"one\n", T0) is Stored.STORED
    assert await output.append("a1", "h1", 1, b"one\n", T0) is Stored.DUPLICATE
    assert await output.append("a1", "h9", 1, b"?", T0) is Stored.UNKNOWN
    assert await output.append("zz", "h1", 1, b"?", T0) is Stored.UNKNOWN
    assert [(r.position, r.host, r.seq, r.data) for r in await output.read("a1", 0)] == [
        (1, "h1", 1, b"one\n")
    ]


async def test_positions_have_no_gaps_in_commit_order_with_many_writers(
    engine: AsyncEngine, database_url: str, stores: tuple[ActionStore, OutputStore]
) -> None:
    # Two "server processes" (engines) storing chunks of two hosts at once.
    other = await open_database(database_url)
    try:
        writers = [OutputStore(engine), OutputStore(other)]
        await asyncio.gather(
            *(
                writers[seq % 2].append("a1", host, seq, f"{host}:{seq}\n".encode(), T0)
                for host in ("h1", "h2")
                for seq in range(1, 21)
            )
        )
    finally:
        await other.dispose()
    rows = await stores[1].read("a1", 0, limit=1000)
    assert [r.position for r in rows] == list(range(1, 41))
    for host in ("h1", "h2"):
        assert sorted(r.seq for r in rows if r.host == host) == list(range(1, 21))


async def test_reading_resumes_after_a_position_and_can_keep_to_some_hosts(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    _, output = stores
    for seq in (1, 2):
        for host in ("h1", "h2"):
            await output.append("a1", host, seq, f"{host}{seq}".encode(), T0)
    assert [r.data for r in await output.read("a1", 2)] == [b"h12", b"h22"]
    assert [r.data for r in await output.read("a1", 0, ["h2"])] == [b"h21", b"h22"]
    assert [r.data for r in await output.read("a1", 0, limit=1)] == [b"h11"]


async def test_the_whole_output_comes_in_order_of_seq_a_page_at_a_time(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    _, output = stores
    for seq in (3, 1, 2):  # arrival order is not the order of the output
        await output.append("a1", "h1", seq, bytes([seq]) * 10, T0)
    assert b"".join([d async for d in output.whole("a1", "h1")]) == (
        b"\x01" * 10 + b"\x02" * 10 + b"\x03" * 10
    )


async def test_output_past_the_limit_is_cut_once_with_a_marker_and_then_kept_empty(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    _, output = stores
    big = b"x" * 600
    for seq in (1, 2, 3):
        assert await output.append("a1", "h1", seq, big, T0) is Stored.STORED
    kept = b"".join([d async for d in output.whole("a1", "h1")])
    assert kept == b"x" * (LIMIT + 1024) + TRUNCATED
    assert [r.seq for r in await output.read("a1", 0)] == [1, 2, 3]  # their count adds up


@pytest.mark.parametrize(
    ("kept", "data", "expected"),
    [
        (0, b"abc", b"abc"),
        (8, b"ab", b"ab"),
        (9, b"ab", b"a" + TRUNCATED),
        (10, b"ab", TRUNCATED),
        (11, b"ab", b""),
    ],
)
def test_capped_keeps_what_fits_marks_the_cut_once_and_then_nothing(
    kept: int, data: bytes, expected: bytes
) -> None:
    assert capped(data, kept, 10) == expected


async def test_a_stream_ends_once_with_its_summary_and_only_final_hosts_are_open(
    stores: tuple[ActionStore, OutputStore],
) -> None:
    actions, output = stores
    assert await output.open_hosts() == []  # pending hosts are not final yet
    await output.append("a1", "h1", 1, b"out", T0)
    result = ActionResult(
        action_id="a1", host="h1", outcome=HostOutcome.SUCCEEDED, finished_at=T0, output_chunks=2
    )
    later = T0 + timedelta(seconds=5)
    await actions.record_result(
        "a1", HostResult("h1", result.outcome, 0, T0, T0, 0.0, "", output_chunks=2), later
    )
    [open_host] = await output.open_hosts()
    assert (open_host.host, open_host.expected, open_host.stored, open_host.final_since) == (
        "h1",
        2,
        1,
        later,
    )
    summary = json.dumps({"host": "h1"}).encode()
    await output.close("a1", "h1", summary, T0)
    await output.close("a1", "h1", b"again", T0)
    assert await output.open_hosts() == []
    assert [(r.seq, r.data) for r in await output.read("a1", 1)] == [(END, summary)]
    assert await output.ended("a1", 1) == set()
    assert await output.ended("a1", 2) == {"h1"}
