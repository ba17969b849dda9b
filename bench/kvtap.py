"""Receiving KV writes with the time each arrived: through a JetStream ordered consumer (what a
KV watch is, and what the server's FleetView uses) and through a plain core subscription."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy


@dataclass(frozen=True)
class Arrival:
    received: float  # time.time() when the callback ran, before any decoding
    key: str
    data: bytes


class Tap:
    """Every message on `$KV.<bucket>.<keys>` from the moment it subscribed, kept in order."""

    def __init__(self, bucket: str) -> None:
        self.prefix = f"$KV.{bucket}."
        self.arrivals: list[Arrival] = []
        self._changed = asyncio.Event()
        self._sub: Any = None

    async def watch(self, nc: Client, keys: str) -> None:
        """Through an ordered push consumer from the stream, delivering only new writes."""
        js = nc.jetstream()
        self._sub = await js.subscribe(
            self.prefix + keys,
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )

    async def core(self, nc: Client, keys: str) -> None:
        """Through a core subscription: the publish itself, as the stream receives it."""
        self._sub = await nc.subscribe(self.prefix + keys, cb=self._on_msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        received = time.time()
        self.arrivals.append(Arrival(received, msg.subject.removeprefix(self.prefix), msg.data))
        self._changed.set()

    def mark(self) -> int:
        """Where the next arrival will be: pass it to `first` to see only what comes after."""
        return len(self.arrivals)

    async def first(self, start: int, match: Callable[[Arrival], bool], timeout: float) -> Arrival:
        """The first arrival from index `start` on that `match`es; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            index = start
            while True:
                while index < len(self.arrivals):
                    arrival = self.arrivals[index]
                    index += 1
                    if match(arrival):
                        return arrival
                self._changed.clear()
                await self._changed.wait()
