"""Reports this host to the fleet: a heartbeat record and one KV key per service, plus an event
on the events stream for every change.

The KV is coalesced per service — only the latest state of each is written once the bus is
back — and everything is written again after every reconnect, so a server that lost its KV
data (invariant 2: runtime state is recoverable) gets the whole picture back.

Events are not coalesced: every change is spooled (agent/spool.py: in memory and on disk;
EVENT_SPOOL of them at most, past that the oldest go, counted) until the events stream has
stored it, so a host cut off for a while — itself, or its site behind an outpost — reports all
that happened meanwhile, in the order it happened, once it is back. Each carries a message id
the stream de-duplicates by, for one sent again because its answer was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import ParseResult

from drover import __version__
from drover.agent.spool import EventSpool
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.messages import HostRecord, ServiceState, encode
from drover.ops.cancels import bounded, checkpoint
from drover.ops.clock import Clock

log = logging.getLogger(__name__)

ServiceKey = tuple[str, str]

EVENT_SPOOL = 10_000  # changes kept for the events stream while the bus is away
EVENT_BATCH = 500  # events published at once, each then answered by the stream


class Reporter:
    def __init__(
        self,
        host: str,
        bus: Bus,
        clock: Clock,
        heartbeat_interval: float,
        spool_file: Path,
        *,
        hostname: str | None = None,
        kind: Literal["agent", "ssh-target"] = "agent",
        via: str | None = None,
    ) -> None:
        self.host = host
        self._hostname = hostname or socket.gethostname()
        self._kind = kind
        self._via = via
        self._bus = bus
        self._clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.started_at: datetime = clock.now()
        self.desired_revision: str | None = None
        self._host_dirty = False
        self._latest: dict[ServiceKey, ServiceState] = {}
        self._dirty: set[ServiceKey] = set()
        self._gone: set[ServiceKey] = set()
        self._wake = asyncio.Event()
        self._connection: tuple[int, datetime] | None = None  # (bus generation, since when)
        # Changes not yet stored by the events stream, oldest first, with the message ids
        # (unique across the agent's lives) the stream de-duplicates by; an earlier life's too.
        self._events = EventSpool(
            spool_file, EVENT_SPOOL, lambda: bus.counters.inc("agent.events_dropped")
        )
        restored = self._events.load()
        if restored:
            log.info("%d state change(s) of an earlier life not yet reported; sending", restored)
        self._changes = 0
        self._life = f"{host}.{int(self.started_at.timestamp() * 1_000_000)}"

    def on_change(self, state: ServiceState) -> None:
        """Provider callback: remember the newest state, send it when the bus allows."""
        key = (state.application, state.service)
        self._latest[key] = state
        self._dirty.add(key)
        self._gone.discard(key)
        self._changes += 1
        self._events.add(f"{self._life}.{self._changes}", state)
        self._wake.set()

    def close(self) -> None:
        """What is still spooled stays in the file, for the next life."""
        self._events.close()

    def latest(self) -> list[ServiceState]:
        """The newest state of every service of this host."""
        return list(self._latest.values())

    def desired_applied(self, revision: str) -> None:
        """Say at once which config revision this host now runs, not at the next heartbeat."""
        self.desired_revision = revision
        self._host_dirty = True
        self._wake.set()

    def forget_all_but(self, keep: set[ServiceKey]) -> None:
        """Services no longer on this host: their keys are deleted, not left to look alive."""
        for key in [k for k in self._latest if k not in keep]:
            del self._latest[key]
            self._dirty.discard(key)
            self._gone.add(key)
        self._wake.set()

    async def publish_changes(self) -> None:
        """One life of the publishing loop; returns after a reconnect to re-send everything."""
        generation = self._bus.generation
        kv = await self._bus.kv(subjects.STATE_BUCKET)
        self._dirty |= set(self._latest)  # a new life starts with a full report
        await self._put_host_record()
        while self._bus.generation == generation:
            if self._host_dirty:
                self._host_dirty = False
                await self._put_host_record()
            while self._gone:
                key = self._gone.pop()
                try:
                    await kv.delete(subjects.service_key(self.host, *key))
                except BaseException:
                    self._gone.add(key)
                    raise
            while self._dirty:
                # Taken off before the write: a change that arrives during it marks it again.
                key = self._dirty.pop()
                state = self._latest[key]
                try:
                    await self._bus.put(
                        subjects.STATE_BUCKET, subjects.service_key(self.host, *key), encode(state)
                    )
                except BaseException:
                    self._dirty.add(key)
                    raise
            while self._events:
                await self._send_events()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await bounded(self._wake.wait(), 1.0)

    async def _send_events(self) -> None:
        """The oldest spooled changes, up to EVENT_BATCH, published in order, all at once;
        each leaves the spool once the stream has stored it (its answer, which comes through
        an outpost as well: the outpost itself storing nothing, its word that it read them
        would not do). A batch that fails raises with the first change not stored and all
        after it still spooled; sent again, the stream knows what it has by message id."""
        batch = self._events.oldest(EVENT_BATCH)
        timeout = self._bus.settings.request_timeout
        stored = await asyncio.gather(
            *(
                self._bus.js.publish(
                    subjects.event_subject(self.host, state.application, state.service),
                    encode(state),
                    timeout=timeout,
                    headers={"Nats-Msg-Id": msg_id},
                )
                for msg_id, state in batch
            ),
            return_exceptions=True,
        )
        failed = next((s for s in stored if isinstance(s, BaseException)), None)
        sent = stored.index(failed) if failed is not None else len(batch)
        self._events.sent(sent)
        self._bus.metrics.messages_published.labels("event").inc(sent)
        if failed is not None:
            raise failed

    async def heartbeat(self) -> None:
        while True:
            await self._put_host_record()
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(self.heartbeat_interval)

    async def _put_host_record(self) -> None:
        if self._connection is None or self._connection[0] != self._bus.generation:
            self._connection = (self._bus.generation, self._clock.now())
        nc = self._bus.nc
        record = HostRecord(
            host=self.host,
            hostname=self._hostname,
            agent_version=__version__,
            started_at=self.started_at,
            heartbeat_at=self._clock.now(),
            heartbeat_interval=self.heartbeat_interval,
            desired_revision=self.desired_revision,
            address=nc.client_ip,
            connected_since=self._connection[1],
            bus_server=_server_of(nc.connected_url),
            kind=self._kind,
            via=self._via,
        )
        await self._bus.put(subjects.STATE_BUCKET, subjects.host_key(self.host), encode(record))


def _server_of(url: ParseResult | None) -> str | None:
    """host:port of the server it is connected to (never the URL's credentials, if any)."""
    return f"{url.hostname}:{url.port}" if url is not None and url.hostname else None
