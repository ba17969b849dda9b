"""The live picture of the fleet, built from the state bucket and kept current by watching it."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.errors import MalformedMessage
from drover.bus.kvwatch import watch_kv
from drover.bus.messages import HostRecord, ServiceState, decode

log = logging.getLogger(__name__)

ServiceId = tuple[str, str, str]  # host, application, service

MISSED_HEARTBEATS = 3
LOST_AFTER = timedelta(hours=1)  # offline this long: lost, not just restarting or cut off
FREEZE_FROM = 10_000  # state entries in a replay from which the picture is frozen (_prune)


class Lifecycle(StrEnum):
    """Where a host stands, from its heartbeats. `decommissioned` hosts are removed outright."""

    ONLINE = "online"
    OFFLINE = "offline"  # missed MISSED_HEARTBEATS heartbeats
    LOST = "lost"  # no heartbeat for LOST_AFTER


@dataclass(frozen=True)
class HostStatus:
    record: HostRecord
    state: Lifecycle
    since: datetime  # when it came to this state (for online: when its agent started)
    cause: str

    @property
    def online(self) -> bool:
        return self.state is Lifecycle.ONLINE


class FleetView:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.hosts: dict[str, HostRecord] = {}
        # Indexed by host first: per-host views must not scan the whole fleet.
        self._services: dict[str, dict[tuple[str, str], ServiceState]] = {}
        # Set whenever a host appears; the desired-state publisher waits on it.
        self.changed = asyncio.Event()
        # Counts joins and departures: what is placed where is cached per (config, this).
        self.hosts_version = 0
        # Told of every change a page shows (host, and the application for a service's).
        self.listeners: list[Callable[[str, str | None], None]] = []
        self._lifecycle: dict[str, Lifecycle | None] = {}  # as the last sweep found each host
        # Counts every change a page shows, lifecycle moves the sweep finds included: what is
        # computed from the picture (server.health's counts) is cached until it moves.
        self.version = 0

    def host_status(self, host: str, now: datetime) -> HostStatus | None:
        record = self.hosts.get(host)
        if record is None:
            return None
        window = timedelta(seconds=record.heartbeat_interval * MISSED_HEARTBEATS)
        silent = now - record.heartbeat_at
        if silent <= window:
            return HostStatus(record, Lifecycle.ONLINE, record.started_at, "heartbeats arrive")
        if silent <= LOST_AFTER:
            cause = f"missed {MISSED_HEARTBEATS} heartbeats (every {record.heartbeat_interval:g} s)"
            return HostStatus(record, Lifecycle.OFFLINE, record.heartbeat_at + window, cause)
        cause = f"no heartbeat for {LOST_AFTER.total_seconds() / 3600:g} h"
        return HostStatus(record, Lifecycle.LOST, record.heartbeat_at + LOST_AFTER, cause)

    def lifecycle(self, host: str, now: datetime) -> Lifecycle | None:
        """Where the host stood at the last sweep (at most one sweep old: what the pages were
        told); a host no sweep has seen yet, now. A dict look-up, for counts over the fleet."""
        if host in self._lifecycle:
            return self._lifecycle[host]
        status = self.host_status(host, now)
        return status.state if status else None

    def services_of(self, host: str) -> list[ServiceState]:
        return [state for _, state in sorted(self._services.get(host, {}).items())]

    def services_by_host(self) -> Mapping[str, Mapping[tuple[str, str], ServiceState]]:
        """host → (application, service) → state, read-only: for loops over the whole fleet."""
        return self._services

    def service(self, host: str, application: str, service: str) -> ServiceState | None:
        return self._services.get(host, {}).get((application, service))

    def service_count(self) -> int:
        return sum(len(services) for services in self._services.values())

    def apply(self, key: str, value: bytes | None) -> None:
        """Take one KV entry (value None: deleted). Malformed entries are counted and dropped."""
        parsed = subjects.parse_state_key(key)
        if parsed is None:
            self._drop(key, "not a drover state key")
            return
        if parsed.is_host:
            shown = self._apply_host(parsed.host, key, value)
            application = None
        else:
            sid = (parsed.host, parsed.application, parsed.service)
            shown = self._apply_service(sid, key, value)
            application = parsed.application
        if shown:
            self._tell(parsed.host, application)

    def _tell(self, host: str, application: str | None) -> None:
        self.version += 1
        for listener in self.listeners:
            listener(host, application)

    def _apply_host(self, host: str, key: str, value: bytes | None) -> bool:
        """Whether anything a page shows changed: a heartbeat alone is not such a change (at
        10,000 hosts they come a thousand a second); `sweep` tells of what they decide."""
        if value is None:
            if self.hosts.pop(host, None) is None:
                return False
            self.hosts_version += 1
            return True
        try:
            record = decode(HostRecord, key, value)
        except MalformedMessage as err:
            self._drop(key, str(err))
            return False
        if record.host != host:
            self._drop(key, f"record names host {record.host!r}")
            return False
        old = self.hosts.get(host)
        self.hosts[host] = record
        if old is None:
            log.info("host %s joined", host)
            self.hosts_version += 1
            self.changed.set()
            return True
        return record.model_copy(update={"heartbeat_at": old.heartbeat_at}) != old

    def _apply_service(self, sid: ServiceId, key: str, value: bytes | None) -> bool:
        host, app_service = sid[0], (sid[1], sid[2])
        if value is None:
            return self._services.get(host, {}).pop(app_service, None) is not None
        try:
            state = decode(ServiceState, key, value)
        except MalformedMessage as err:
            self._drop(key, str(err))
            return False
        if (state.host, state.application, state.service) != sid:
            self._drop(key, "value does not match its key")
            return False
        services = self._services.setdefault(host, {})
        old = services.get(app_service)
        services[app_service] = state
        return state != old

    def sweep(self, now: datetime) -> None:
        """Tell the listeners of every host whose lifecycle moved since the last sweep (online
        → offline → lost happen by time passing, with no entry to take)."""
        for host in list(self.hosts):
            status = self.host_status(host, now)
            state = status.state if status else None
            if self._lifecycle.get(host, state) is not state:
                self._tell(host, None)
            self._lifecycle[host] = state
        for gone in self._lifecycle.keys() - self.hosts.keys():
            del self._lifecycle[gone]

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
            self.hosts_version += 1
            self._tell(host, None)
        for host, services in self._services.items():
            for app, svc in [k for k in services if subjects.service_key(host, *k) not in present]:
                del services[(app, svc)]
                self._tell(host, app)
        # The picture is loaded: at 10,000 hosts × 20 services some two million objects, none
        # in a cycle. Moved out of the cycle collector's way (with all else the process holds
        # now), or each of its full collections goes through them all and stops the server
        # for 1.7 s (docs/benchmarks.md). Replaced later, they are still freed as ever, by
        # their reference counts. A small fleet gains nothing by it.
        if len(present) >= FREEZE_FROM:
            gc.freeze()
