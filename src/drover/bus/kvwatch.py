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
    loop = asyncio.get_running_loop()
    idle_since = loop.time()
    seen = 0  # the newest revision this watch handed on
    try:
        while bus.generation == generation:
            try:
                entry = await watcher.updates(timeout=poll)  # type: ignore[no-untyped-call]
            except TimeoutError:  # nats.errors.TimeoutError is one
                if loop.time() - idle_since >= stall_after:
                    idle_since = loop.time()
                    if await _stalled(bus, bucket, watcher, seen, stall_after):
                        return
                continue
            except nats.errors.Error:
                bus.metrics.bus_errors.labels("watch").inc()
                raise
            idle_since = loop.time()
            if entry is None:  # the end of the replay
                if replayed is not None and on_replayed is not None:
                    on_replayed(replayed)
                replayed = None
                continue
            bus.metrics.messages_received.labels(bucket).inc()
            if entry.delta is not None:
                bus.metrics.consumer_pending.labels(bucket).set(entry.delta)
            seen = max(seen, entry.revision or 0)
            if replayed is not None:
                replayed.add(entry.key)
            deleted = entry.operation in _DELETED or not entry.value
            await on_entry(entry.key, None if deleted else entry.value)
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def _stalled(bus: Bus, bucket: str, watcher: Any, seen: int, idle: float) -> bool:
    """Whether the watch's consumer holds entries newer than any that arrived: some wait to
    be delivered, or were delivered (an ordered consumer acknowledges nothing) past `seen`
    and never reached us. Logged and counted; the caller makes a new watch."""
    subscription = getattr(watcher, "_sub", None)  # nats-py's KeyWatcher keeps it there
    if subscription is None:
        return False
    info = await subscription.consumer_info()
    pending = info.num_pending or 0
    delivered = info.delivered.stream_seq if info.delivered else 0
    bus.metrics.consumer_pending.labels(bucket).set(pending)
    if not pending and (delivered or 0) <= seen:
        return False
    bus.metrics.consumer_stalls.labels(bucket).inc()
    log.warning(
        "watch of %s stalled: entries up to %d wait or went undelivered and none arrived "
        "for %.0fs; making a new watch",
        bucket,
        max(delivered or 0, seen + pending),
        idle,
    )
    return True
