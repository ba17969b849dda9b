"""Decommissioning a host: the end of its lifecycle (online → offline → lost → decommissioned).

Its record, its services' states, its desired state and its unit inventory are deleted from the
bus, so it leaves every view, target and count; the audit trail keeps that it was there. Only a
host that is not online can go: an agent still running would simply report itself back.
"""

from __future__ import annotations

import nats.errors

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.ops.clock import Clock
from drover.server.errors import Conflict, NotFound, Unavailable
from drover.server.fleet import FleetView
from drover.store.audit import AuditEntry, AuditLog


async def decommission(
    bus: Bus, fleet: FleetView, audit: AuditLog, clock: Clock, host: str, by: str
) -> None:
    now = clock.now()
    status = fleet.host_status(host, now)
    if status is None:
        raise NotFound(f"no host {host!r}")
    if status.online:
        raise Conflict(f"host {host!r} is online: stop its agent first")
    keyed = [(subjects.STATE_BUCKET, subjects.host_key(host))]
    keyed += [
        (subjects.STATE_BUCKET, subjects.service_key(host, s.application, s.service))
        for s in fleet.services_of(host)
    ]
    keyed += [
        (subjects.DESIRED_BUCKET, subjects.desired_key(host)),
        (subjects.INVENTORY_BUCKET, subjects.inventory_key(host)),
    ]
    try:
        for bucket, key in keyed:
            await (await bus.kv(bucket)).delete(key)
    except (nats.errors.Error, OSError) as err:
        raise Unavailable(f"cannot reach the bus to remove host {host!r}: {err!r}") from err
    detail = {
        "was": status.state.value,
        "since": status.since.isoformat(),
        "last_heartbeat": status.record.heartbeat_at.isoformat(),
    }
    await audit.record(AuditEntry(by, "host.decommissioned", host, now, detail))
