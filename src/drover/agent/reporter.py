"""Reports this host to the fleet: a heartbeat record and one KV key per service, plus an event
on the events stream for every change.

Changes are coalesced per service — only the latest state of each is kept while the bus is
away — and everything is written again after every reconnect, so a server that lost its KV
data (invariant 2: runtime state is recoverable) gets the whole picture back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import datetime

from drover import __version__
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.messages import HostRecord, ServiceState, encode
from drover.ops.clock import Clock

log = logging.getLogger(__name__)

ServiceKey = tuple[str, str]


class Reporter:
    def __init__(self, host: str, bus: Bus, clock: Clock, heartbeat_interval: float) -> None:
        self.host = host
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

    def on_change(self, state: ServiceState) -> None:
        """Provider callback: remember the newest state, send it when the bus allows."""
        key = (state.application, state.service)
        self._latest[key] = state
        self._dirty.add(key)
        self._gone.discard(key)
        self._wake.set()

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
                    await kv.put(subjects.service_key(self.host, *key), encode(state))
                except BaseException:
                    self._dirty.add(key)
                    raise
                await self._bus.nc.publish(subjects.event_subject(self.host, *key), encode(state))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    async def heartbeat(self) -> None:
        while True:
            await self._put_host_record()
            await asyncio.sleep(self.heartbeat_interval)

    async def _put_host_record(self) -> None:
        record = HostRecord(
            host=self.host,
            hostname=socket.gethostname(),
            agent_version=__version__,
            started_at=self.started_at,
            heartbeat_at=self._clock.now(),
            heartbeat_interval=self.heartbeat_interval,
            desired_revision=self.desired_revision,
        )
        kv = await self._bus.kv(subjects.STATE_BUCKET)
        await kv.put(subjects.host_key(self.host), encode(record))
