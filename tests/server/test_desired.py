"""The desired-state publisher computes what changed, not the whole fleet at every look: a host
joining costs that host; a new config or an override coming into force costs every host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats.js.errors
import pytest

from drover.bus import subjects, topology
from drover.bus.connection import Bus
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import DesiredState, decode, encode
from drover.bus.trust.keys import KeyPair, Kind
from drover.config.loader import load_files
from drover.config.schema import FleetConfig
from drover.model.override import Override
from drover.model.status import TargetStatus
from drover.ops.clock import SystemClock
from drover.ops.counters import Counters
from drover.server import desired
from drover.server.fleet import FleetView
from tests.busauth import bus_settings
from tests.conftest import eventually
from tests.reports import host_record

HOSTS = 250  # more than one YIELD_EVERY


def config(command: str) -> FleetConfig:
    text = f"""
groups:
  everywhere: {{hosts: ["*"]}}
applications:
  shop:
    groups: [everywhere]
    services:
      web: {{provider: process, command: [{command}, "3600"]}}
"""
    return load_files({"fleet.yaml": text.encode()}, revision=command)


def joined(fleet: FleetView, host: str) -> None:
    record = host_record(host, datetime.now(UTC), heartbeat_interval=10)
    fleet.apply(subjects.host_key(host), encode(record))


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    bus = Bus(bus_settings(nats_server), Counters())
    await bus.connect()
    await topology.ensure(bus.js)
    yield bus
    await bus.close()


async def test_a_joining_host_costs_itself_and_a_new_config_or_override_costs_every_host(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[str] = []
    compute = desired.desired_for_host

    def counted(config: FleetConfig, host: str, *rest: object) -> DesiredState:
        computed.append(host)
        return compute(config, host, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(desired, "desired_for_host", counted)
    overrides: list[Override] = []

    async def in_store() -> list[Override]:
        return list(overrides)

    fleet = FleetView(bus)
    publisher = desired.DesiredPublisher(
        bus, fleet, SystemClock(), in_store, signer=KeyPair.create(Kind.ACCOUNT)
    )
    kv = await bus.kv(subjects.DESIRED_BUCKET)

    async def written(host: str) -> tuple[str, TargetStatus] | None:
        try:
            entry = await kv.get(subjects.desired_key(host))
        except nats.js.errors.KeyNotFoundError:
            return None
        service = decode(DesiredState, entry.key, entry.value or b"").services[0]
        return service.command[0], service.target

    async def every_host_runs(
        command: str, hosts: list[str], target: TargetStatus = TargetStatus.RUNNING
    ) -> bool:
        return all([await written(h) == (command, target) for h in hosts])

    hosts = [f"h{i:03d}" for i in range(HOSTS)]
    for host in hosts:
        joined(fleet, host)
    await publisher.config_changed(config("sleep"))
    loop = asyncio.create_task(publisher.publish())
    try:
        await eventually(lambda: every_host_runs("sleep", hosts), timeout=30)
        assert sorted(computed) == hosts  # once each

        computed.clear()
        joined(fleet, "late")
        await eventually(lambda: every_host_runs("sleep", ["late"]), timeout=10)
        await asyncio.sleep(0.2)  # a look that would compute the others has had its chance
        assert computed == ["late"]

        computed.clear()
        await publisher.config_changed(config("pause"))
        await eventually(lambda: every_host_runs("pause", [*hosts, "late"]), timeout=30)
        assert sorted(computed) == sorted([*hosts, "late"])

        computed.clear()
        now = datetime.now(UTC)
        stop = Override(
            id="o1",
            application="shop",
            service=None,
            host=None,
            status=TargetStatus.STOPPED,
            reason="maintenance",
            created_by="alice",
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
        overrides.append(stop)  # as made through another server: no one tells this one
        stopped = TargetStatus.STOPPED
        await eventually(
            lambda: every_host_runs("pause", [*hosts, "late"], stopped),
            timeout=desired.RECHECK_EVERY + 10,
        )
        assert sorted(computed) == sorted([*hosts, "late"])
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
