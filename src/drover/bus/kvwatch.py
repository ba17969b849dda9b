"""Following a KV bucket: one life of a watch, made anew by its loop after every reconnect."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js.kv import KeyValue

from drover.bus.connection import Bus

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
) -> None:
    """Hand every entry of `keys` in `bucket` to `on_entry` (value None: deleted).

    A watch first replays the current value of every key; `on_replayed` then gets the set of
    keys that exist, so a caller can drop what was deleted while it was not watching. Returns
    when the bus has reconnected, so the loop running it starts a fresh watch.
    """
    generation = bus.generation
    kv: KeyValue = await bus.kv(bucket)
    watcher = await kv.watch(keys)
    replayed: set[str] | None = set()
    try:
        while bus.generation == generation:
            try:
                entry = await watcher.updates(timeout=poll)  # type: ignore[no-untyped-call]
            except TimeoutError:  # nats.errors.TimeoutError is one
                continue
            if entry is None:  # the end of the replay
                if replayed is not None and on_replayed is not None:
                    on_replayed(replayed)
                replayed = None
                continue
            if replayed is not None:
                replayed.add(entry.key)
            deleted = entry.operation in _DELETED or not entry.value
            await on_entry(entry.key, None if deleted else entry.value)
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]
