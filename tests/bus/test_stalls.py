"""Fetch and watch loops against a real nats-server: they count what they take, and a
subscription that stops receiving while work waits is found out and made anew."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.kv import KeyValue

from drover.bus.connection import Bus
from drover.bus.consume import consume
from drover.bus.kvwatch import watch_kv
from drover.ops.loops import forever
from tests.conftest import eventually


def sample(bus: Bus, name: str, **labels: str) -> float | None:
    return bus.metrics.registry.get_sample_value(name, labels)


async def test_a_deaf_subscription_is_found_stalled_and_recreated_and_nothing_is_lost(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriptions: list[JetStreamContext.PullSubscription] = []
    subscribe = bus.js.pull_subscribe

    async def remembered(*args: Any, **kwargs: Any) -> JetStreamContext.PullSubscription:
        subscriptions.append(await subscribe(*args, **kwargs))
        return subscriptions[-1]

    monkeypatch.setattr(bus.js, "pull_subscribe", remembered)
    taken: list[bytes] = []

    async def handle(msg: Msg) -> None:
        taken.append(msg.data)
        await msg.ack()

    async def life() -> None:
        await consume(
            bus,
            stream="WORK",
            subject="work.>",
            durable="worker",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=2.0),
            handle=handle,
            batch=4,
            poll=0.2,
            stall_after=0.5,
        )

    loop = asyncio.create_task(forever("test.consume", life, bus.counters))
    try:
        for n in range(3):
            await bus.publish("work.a", f"{n}".encode())
        await eventually(lambda: len(taken) == 3)
        # What the tool drover learns from ran into: the client's subscription no longer
        # hears the messages its fetches ask for, and no error says so.
        await subscriptions[0]._sub.unsubscribe()
        for n in range(3, 10):
            await bus.publish("work.a", f"{n}".encode())
        await eventually(lambda: len(taken) == 10, timeout=20)
    finally:
        loop.cancel()
    assert taken == [f"{n}".encode() for n in range(10)]  # each once, none lost
    assert len(subscriptions) == 2
    assert sample(bus, "drover_consumer_stalls_total", consumer="worker") == 1
    assert sample(bus, "drover_bus_messages_received_total", consumer="worker") == 10
    assert sample(bus, "drover_consumer_pending_messages", consumer="worker") == 0


async def test_a_quiet_consumer_is_not_a_stall(bus: Bus) -> None:
    taken: list[bytes] = []

    async def handle(msg: Msg) -> None:
        taken.append(msg.data)
        await msg.ack()

    life = asyncio.create_task(
        consume(
            bus,
            stream="WORK",
            subject="work.>",
            durable="quiet",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
            handle=handle,
            batch=4,
            poll=0.1,
            stall_after=0.3,
        )
    )
    await bus.publish("work.b", b"one")
    await eventually(lambda: taken == [b"one"])
    await asyncio.sleep(1.5)  # five stall checks' worth of empty fetches
    assert not life.done()  # still the first life: nothing waits, so no stall
    life.cancel()
    assert sample(bus, "drover_consumer_stalls_total", consumer="quiet") is None


async def test_a_deaf_watch_is_found_stalled_and_made_anew_and_every_entry_arrives(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.js.create_key_value(bucket="things")
    watchers: list[Any] = []
    watch = KeyValue.watch

    async def remembered(self: KeyValue, *args: Any, **kwargs: Any) -> Any:
        watchers.append(await watch(self, *args, **kwargs))
        return watchers[-1]

    monkeypatch.setattr(KeyValue, "watch", remembered)
    seen: dict[str, bytes | None] = {}

    async def take(key: str, value: bytes | None) -> None:
        seen[key] = value

    async def life() -> None:
        await watch_kv(bus, "things", ">", take, poll=0.2, stall_after=0.5)

    loop = asyncio.create_task(forever("test.watch", life, bus.counters))
    try:
        for n in range(3):
            await bus.put("things", f"k{n}", b"before")
        await eventually(lambda: len(seen) == 3)
        # The watch's subscription stops hearing its consumer, and no error says so.
        await watchers[0]._sub._sub.unsubscribe()
        for n in range(3, 8):
            await bus.put("things", f"k{n}", b"after")
        await eventually(lambda: len(seen) == 8, timeout=20)
    finally:
        loop.cancel()
    assert seen == {f"k{n}": b"before" if n < 3 else b"after" for n in range(8)}
    assert len(watchers) == 2
    assert sample(bus, "drover_consumer_stalls_total", consumer="things") == 1


async def test_a_quiet_watch_is_not_a_stall(bus: Bus) -> None:
    await bus.js.create_key_value(bucket="calm")
    await bus.put("calm", "one", b"1")
    seen: list[str] = []

    async def take(key: str, value: bytes | None) -> None:
        seen.append(key)

    life = asyncio.create_task(watch_kv(bus, "calm", ">", take, poll=0.1, stall_after=0.3))
    await eventually(lambda: seen == ["one"])
    await asyncio.sleep(1.5)
    assert not life.done()
    life.cancel()
    assert sample(bus, "drover_consumer_stalls_total", consumer="calm") is None
