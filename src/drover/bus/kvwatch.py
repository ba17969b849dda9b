"""Following a KV bucket: one life of a watch, made anew by its loop after every reconnect,
and after a stall: entries the bus holds for the watch that do not arrive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.js.kv import KeyValue

from drover.bus.connection import Bus
from drover.bus.consume import STALL_AFTER, StallCheck
from drover.ops.cancels import checkpoint

log = logging.getLogger(__name__)

OnEntry = Callable[[str, bytes | None], Awaitable[None]]
OnReplayed = Callable[[set[str]], None]

_DELETED = ("DEL", "PURGE")
TURN_EVERY = 32  # entries taken from the queue between two turns of the event loop


async def watch_kv(
    bus: Bus,
    bucket: str,
    keys: str,
    on_entry: OnEntry,
    on_replayed: OnReplayed | None = None,
    poll: float = 2.0,
    stall_after: float = STALL_AFTER,
) -> None:
    """Hand every entry of `keys` in `bucket` to `on_entry` (value None: deleted).

    A watch first replays the current value of every key; `on_replayed` then gets the set of
    keys that exist, so a caller can drop what was deleted while it was not watching. Returns
    when the bus has reconnected, so the loop running it starts a fresh watch, and after a
    stall: nothing arrived for `stall_after` seconds while its consumer holds newer entries.
    """
    generation = bus.generation
    kv: KeyValue = await bus.kv(bucket)
    watcher = await kv.watch(keys)
    replayed: set[str] | None = set()
    stall = _WatchStall(bus, bucket, watcher, stall_after)
    pending = bus.metrics.consumer_pending.labels(bucket)
    try:
        while bus.generation == generation:
            try:
                entry = await _next(watcher, poll)
            except TimeoutError:  # nats.errors.TimeoutError is one
                checkpoint()  # updates may have swallowed the cancel that stops this loop
                if await stall.stalled():
                    return
                continue
            except nats.errors.Error:
                bus.metrics.bus_errors.labels("watch").inc()
                raise
            stall.took(entry.revision if entry is not None else None)
            if entry is None:  # the end of the replay
                if replayed is not None and on_replayed is not None:
                    on_replayed(replayed)
                replayed = None
                continue
            if entry.delta is not None:
                pending.set(entry.delta)
            if replayed is not None:
                replayed.add(entry.key)
            deleted = entry.operation in _DELETED or not entry.value
            await on_entry(entry.key, None if deleted else entry.value)
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def _next(watcher: Any, poll: float) -> Any:
    """The watch's next entry. One already waiting is taken at once: `updates` makes a task
    and a timer for each (asyncio.wait_for), a fifth of a server's time under a fleet's
    stream of state changes."""
    waiting: asyncio.Queue[Any] | None = getattr(watcher, "_updates", None)  # nats-py's queue
    if waiting is not None and not waiting.empty():
        if waiting.qsize() % TURN_EVERY == 0:
            await asyncio.sleep(0)  # a turn for the API between two runs of entries
        return waiting.get_nowait()
    entry = await watcher.updates(timeout=poll)
    checkpoint()  # updates may have swallowed the cancel that stops this loop
    return entry


class _WatchStall:
    """A watch's stall check: its ordered consumer holds entries newer than any that arrived,
    waiting to be delivered or delivered (it acknowledges nothing) and never received."""

    def __init__(self, bus: Bus, bucket: str, watcher: Any, stall_after: float) -> None:
        self._bus = bus
        self._bucket = bucket
        self._watcher = watcher
        self._check = StallCheck(stall_after, self._behind)
        self._seen = 0  # the newest revision that arrived
        self._received = bus.metrics.messages_received.labels(bucket)

    def took(self, revision: int | None) -> None:
        if revision is not None:
            self._received.inc()
            self._seen = max(self._seen, revision)
        self._check.took()

    async def stalled(self) -> bool:
        why = await self._check.stalled()
        if why is None:
            return False
        self._bus.metrics.consumer_stalls.labels(self._bucket).inc()
        log.warning("watch of %s stalled: %s; making a new watch", self._bucket, why)
        return True

    async def _behind(self) -> str | None:
        subscription = getattr(self._watcher, "_sub", None)  # where nats-py's KeyWatcher keeps it
        if subscription is None:
            return None
        info = await subscription.consumer_info()
        pending = info.num_pending or 0
        delivered = (info.delivered.stream_seq or 0) if info.delivered else 0
        self._bus.metrics.consumer_pending.labels(self._bucket).set(pending)
        if pending or delivered > self._seen:
            return f"entries up to {max(delivered, self._seen + pending)} never arrived"
        return None
