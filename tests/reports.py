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
            state = ServiceState(
                host=host,
                application=application,
                service=service,
                provider="process",
                status=status,
                since=now,
                convergence=convergence,
            )
            await kv.put(subjects.service_key(host, application, service), encode(state))
        record = HostRecord(
            host=host,
            hostname=f"{host}.example",
            agent_version="0.0-reported",
            started_at=now,
            heartbeat_at=now,
            heartbeat_interval=3600,
        )
        await kv.put(subjects.host_key(host), encode(record))
    finally:
        await client.close()
