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
from drover.bus.consume import STALL_AFTER

log = logging.getLogger(__name__)

OnEntry = Callable[[str, bytes | None], Awaitable[None]]
OnReplayed = Callable[[set[str]], None]

_DELETED = ("DEL", "PURGE")


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
    try:
        while bus.generation == generation:
            try:
                entry = await watcher.updates(timeout=poll)  # type: ignore[no-untyped-call]
            except TimeoutError:  # nats.errors.TimeoutError is one
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
                bus.metrics.consumer_pending.labels(bucket).set(entry.delta)
            if replayed is not None:
                replayed.add(entry.key)
            deleted = entry.operation in _DELETED or not entry.value
            await on_entry(entry.key, None if deleted else entry.value)
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]


class _WatchStall:
    """A watch that took nothing for `stall_after` seconds is stalled when, at two looks in a
    row, its consumer holds entries newer than any that arrived: some wait to be delivered, or
    were delivered (an ordered consumer acknowledges nothing) and never reached it."""

    def __init__(self, bus: Bus, bucket: str, watcher: Any, stall_after: float) -> None:
        self._bus = bus
        self._bucket = bucket
        self._watcher = watcher
        self._stall_after = stall_after
        self._loop = asyncio.get_running_loop()
        self._idle_since = self._loop.time()
        self._seen = 0  # the newest revision that arrived
        self._suspect = False

    def took(self, revision: int | None) -> None:
        if revision is not None:
            self._bus.metrics.messages_received.labels(self._bucket).inc()
            self._seen = max(self._seen, revision)
        self._idle_since = self._loop.time()
        self._suspect = False

    async def stalled(self) -> bool:
        if self._loop.time() - self._idle_since < self._stall_after:
            return False
        if not await _behind(self._bus, self._bucket, self._watcher, self._seen):
            self._idle_since, self._suspect = self._loop.time(), False
            return False
        if not self._suspect:
            self._suspect = True  # look again after the next empty wait
            return False
        self._bus.metrics.consumer_stalls.labels(self._bucket).inc()
        log.warning(
            "watch of %s stalled: its consumer holds entries that did not arrive for %.0fs; "
            "making a new watch",
            self._bucket,
            self._stall_after,
        )
        return True


async def _behind(bus: Bus, bucket: str, watcher: Any, seen: int) -> bool:
    """Whether the watch's consumer holds entries newer than any that arrived: some wait to be
    delivered, or were delivered (an ordered consumer acknowledges nothing) past `seen`."""
    subscription = getattr(watcher, "_sub", None)  # nats-py's KeyWatcher keeps it there
    if subscription is None:
        return False
    info = await subscription.consumer_info()
    pending = info.num_pending or 0
    delivered = (info.delivered.stream_seq or 0) if info.delivered else 0
    bus.metrics.consumer_pending.labels(bucket).set(pending)
    return pending > 0 or delivered > seen
