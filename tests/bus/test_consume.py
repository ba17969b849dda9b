"""A consume life that ends while it holds messages gives them back to the consumer, so the
next life takes them at once, not after their ack wait."""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from drover.bus.connection import Bus
from drover.bus.consume import Handle, consume
from tests.conftest import eventually

ACK_WAIT = 30.0  # what the server's results consumer has


def life(bus: Bus, handle: Handle) -> asyncio.Task[None]:
    return asyncio.create_task(
        consume(
            bus,
            stream="WORK",
            subject="work.>",
            durable="worker",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT),
            handle=handle,
            batch=3,
            poll=0.2,
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
