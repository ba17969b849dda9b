"""The live picture of the fleet, built from the state bucket and kept current by watching it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.errors import MalformedMessage
from drover.bus.kvwatch import watch_kv
from drover.bus.messages import HostRecord, ServiceState, decode

log = logging.getLogger(__name__)

ServiceId = tuple[str, str, str]  # host, application, service

MISSED_HEARTBEATS = 3


@dataclass(frozen=True)
class HostStatus:
    record: HostRecord
    online: bool


class FleetView:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.hosts: dict[str, HostRecord] = {}
        self.services: dict[ServiceId, ServiceState] = {}
        self.changed = (
            asyncio.Event()
        )  # set whenever a host appears; the desired publisher waits on it

    def host_status(self, host: str, now: datetime) -> HostStatus | None:
        record = self.hosts.get(host)
        if record is None:
            return None
        window = timedelta(seconds=record.heartbeat_interval * MISSED_HEARTBEATS)
        return HostStatus(record, online=now - record.heartbeat_at <= window)

    def services_of(self, host: str) -> list[ServiceState]:
        return [s for (h, _, _), s in sorted(self.services.items()) if h == host]

    def service(self, host: str, application: str, service: str) -> ServiceState | None:
        return self.services.get((host, application, service))

    def apply(self, key: str, value: bytes | None) -> None:
        """Take one KV entry (value None: deleted). Malformed entries are counted and dropped."""
        parsed = subjects.parse_state_key(key)
        if parsed is None:
            self._drop(key, "not a drover state key")
            return
        if parsed.is_host:
            self._apply_host(parsed.host, key, value)
        else:
            self._apply_service((parsed.host, parsed.application, parsed.service), key, value)

    def _apply_host(self, host: str, key: str, value: bytes | None) -> None:
        if value is None:
            self.hosts.pop(host, None)
            return
        try:
            record = decode(HostRecord, key, value)
        except MalformedMessage as err:
            self._drop(key, str(err))
            return
        if record.host != host:
            self._drop(key, f"record names host {record.host!r}")
            return
        if host not in self.hosts:
            log.info("host %s joined", host)
            self.changed.set()
        self.hosts[host] = record

    def _apply_service(self, sid: ServiceId, key: str, value: bytes | None) -> None:
        if value is None:
            self.services.pop(sid, None)
            return
        try:
            state = decode(ServiceState, key, value)
        except MalformedMessage as err:
            self._drop(key, str(err))
            return
        if (state.host, state.application, state.service) != sid:
            self._drop(key, "value does not match its key")
            return
        self.services[sid] = state

    def _drop(self, key: str, why: str) -> None:
        self._bus.counters.inc("server.malformed_messages")
        log.warning("dropped state entry %s: %s", key, why)

    async def watch(self) -> None:
        """One life of the watch (see bus.kvwatch); keys gone while we were away are dropped."""
        await watch_kv(self._bus, subjects.STATE_BUCKET, ">", self._take, self._prune)

    async def _take(self, key: str, value: bytes | None) -> None:
        self.apply(key, value)

    def _prune(self, present: set[str]) -> None:
        for host in [h for h in self.hosts if subjects.host_key(h) not in present]:
            del self.hosts[host]
        for sid in [s for s in self.services if subjects.service_key(*s) not in present]:
            del self.services[sid]
