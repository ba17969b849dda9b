"""Hosts that report without an agent: their records and service states written to the state
bucket as an agent would write them, for pages that need a fleet in a given shape (a drifted
service, a failed one) at once and for sure."""

from __future__ import annotations

from datetime import UTC, datetime

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import HostRecord, ServiceState, encode
from drover.model.status import Convergence, ServiceStatus
from tests.busauth import superuser_client

Reported = ServiceStatus | tuple[ServiceStatus, Convergence]


async def report(
    nats_server: EmbeddedNats, host: str, services: dict[tuple[str, str], Reported]
) -> None:
    """`host` alive (heartbeats every hour: online for three) with `services` so: a status,
    or a status and the agent's judgement of it against the target."""
    now = datetime.now(UTC)
    client = await superuser_client(nats_server)
    try:
        kv = await client.jetstream().key_value(subjects.STATE_BUCKET)
        for (application, service), reported in services.items():
            status, convergence = reported if isinstance(reported, tuple) else (reported, None)
            state = service_state(host, application, service, status, now, convergence)
            await kv.put(subjects.service_key(host, application, service), encode(state))
        await kv.put(subjects.host_key(host), encode(host_record(host, now)))
    finally:
        await client.close()


def host_record(host: str, heartbeat_at: datetime, heartbeat_interval: float = 3600) -> HostRecord:
    """The record an agent writes for its host, its last heartbeat at `heartbeat_at`."""
    return HostRecord(
        host=host,
        hostname=f"{host}.example",
        agent_version="0.0-reported",
        started_at=heartbeat_at,
        heartbeat_at=heartbeat_at,
        heartbeat_interval=heartbeat_interval,
    )


def service_state(
    host: str,
    application: str,
    service: str,
    status: ServiceStatus,
    since: datetime,
    convergence: Convergence | None = None,
) -> ServiceState:
    """A `process` service's state as its agent reports it."""
    return ServiceState(
        host=host,
        application=application,
        service=service,
        provider="process",
        status=status,
        since=since,
        convergence=convergence,
    )
