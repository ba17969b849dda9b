"""A consume life that ends while it holds messages gives them back to the consumer, so the
next life takes them at once, not after their ack wait."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from drover.bus.connection import Bus
from drover.bus.consume import LONG_POLL, Handle, HandleBatch, consume
from drover.bus.embedded import EmbeddedNats
from tests.conftest import eventually

ACK_WAIT = 30.0  # what the server's results consumer has


def life(
    bus: Bus,
    handle: Handle | None = None,
    *,
    handle_batch: HandleBatch | None = None,
    durable: str = "worker",
    batch: int = 3,
    poll: float = 0.2,
) -> asyncio.Task[None]:
    """One life of a consumer of the WORK stream, made if missing."""
    return asyncio.create_task(
        consume(
            bus,
            stream="WORK",
            subject="work.>",
            durable=durable,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT),
            handle=handle,
            handle_batch=handle_batch,
            batch=batch,
            poll=poll,
        )
    )


async def test_a_life_stopped_while_it_handles_a_batch_hands_the_batch_back(bus: Bus) -> None:
    for n in range(3):
        await bus.publish("work.a", f"{n}".encode())
    handling = asyncio.Event()

    async def stuck(_msg: Msg) -> None:  # a server's stop finds it inside a database call
        handling.set()
        await asyncio.Event().wait()

    first = life(bus, stuck)
    await asyncio.wait_for(handling.wait(), 10)
    first.cancel()
    await asyncio.wait({first}, timeout=5)
    assert first.cancelled()

    taken: list[bytes] = []

    async def take(msg: Msg) -> None:
        taken.append(msg.data)
        await msg.ack()

    second = life(bus, take)
    try:
        # Not handed back, they would come again only after ACK_WAIT.
        await eventually(lambda: len(taken) == 3, timeout=ACK_WAIT / 3)
    finally:
        second.cancel()
    assert sorted(taken) == [b"0", b"1", b"2"]


async def test_a_long_poll_brings_a_message_at_once_and_ends_when_the_bus_reconnects(
    nats_server: EmbeddedNats, bus: Bus
) -> None:
    """An agent's consumers wait 30 s per fetch (LONG_POLL): a message that comes meanwhile is
    delivered at once, and a nats-server restart, which loses the fetch's request, ends the
    life at once, so that the next one asks anew (not 30 s later)."""
    taken: list[bytes] = []

    async def take(msg: Msg) -> None:
        taken.append(msg.data)
        await msg.ack()

    waiting = life(bus, take, durable="patient", batch=1, poll=LONG_POLL)
    try:
        await asyncio.sleep(0.5)  # the fetch is waiting on nats-server
        began = time.monotonic()
        await bus.publish("work.a", b"now")
        await eventually(lambda: taken == [b"now"], timeout=5)
        assert time.monotonic() - began < 2

        port = nats_server.port
        await nats_server.stop()
        nats_server.port = port
        await nats_server.start()
        began = time.monotonic()
        await asyncio.wait_for(waiting, timeout=LONG_POLL / 2)
        assert time.monotonic() - began < LONG_POLL / 2
    finally:
        waiting.cancel()


async def test_a_batch_handler_gets_the_whole_batch_and_what_it_did_not_ack_comes_back(
    bus: Bus,
) -> None:
    for n in range(4):
        await bus.publish("work.a", f"{n}".encode())
    batches: list[list[bytes]] = []

    async def half(batch: list[Msg]) -> None:
        batches.append([msg.data for msg in batch])
        await batch[0].ack()
        raise RuntimeError("the database went away after the first")

    first = life(bus, handle_batch=half, durable="batches", batch=4)
    with contextlib.suppress(RuntimeError):
        await asyncio.wait_for(first, 10)
    assert batches == [[b"0", b"1", b"2", b"3"]]

    again: list[bytes] = []

    async def whole(batch: list[Msg]) -> None:
        again.extend(msg.data for msg in batch)
        for msg in batch:
            await msg.ack()

    second = life(bus, handle_batch=whole, durable="batches", batch=4)
    try:
        # The three not acked come back at once (not after ACK_WAIT); the first never again.
        await eventually(lambda: sorted(again) == [b"1", b"2", b"3"], timeout=ACK_WAIT / 3)
        await asyncio.sleep(0.5)
        assert sorted(again) == [b"1", b"2", b"3"]
    finally:
        second.cancel()


async def test_a_consumer_takes_one_handler_exactly(bus: Bus) -> None:
    async def each(_msg: Msg) -> None: ...

    async def whole(_batch: list[Msg]) -> None: ...

    for handlers in ({}, {"handle": each, "handle_batch": whole}):
        with pytest.raises(TypeError, match="one of handle and handle_batch"):
            await life(bus, **handlers)  # type: ignore[arg-type]
