"""Hosts' reports, both ways.

Written without an agent: records and service states put in the state bucket as an agent would
put them, for pages that need a fleet in a given shape (a drifted service, a failed one) at once
and for sure. Read back: the state changes the events stream holds, in stream order, for tests
that count what reached the hub."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.client import Client

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import HostRecord, ServiceState, decode, encode
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


async def events_stored(bus: Client, subject: str = subjects.EVENTS_ALL) -> list[ServiceState]:
    """The state changes on the events stream under `subject`, in stream order (an ordered
    consumer read to the end)."""
    js = bus.jetstream()
    found: list[ServiceState] = []
    if not (await js.stream_info(subjects.EVENTS_STREAM)).state.messages:
        return found
    sub = await js.subscribe(subject, stream=subjects.EVENTS_STREAM, ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except TimeoutError:
                return found
            found.append(decode(ServiceState, msg.subject, msg.data))
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()
