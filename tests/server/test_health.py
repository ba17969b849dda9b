"""server.health: the one bucket each placement is counted in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from drover.bus import subjects
from drover.bus.connection import Bus, BusSettings
from drover.bus.messages import encode
from drover.config.loader import load_files
from drover.model.override import Override
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.counters import Counters
from drover.server.fleet import FleetView
from drover.server.health import ApplicationPicture, Bucket, Counts, bucket
from tests.reports import host_record, service_state

S, T = ServiceStatus, TargetStatus

FLEET = """
groups:
  everywhere: {hosts: ["*"]}
  some: {hosts: ["h0*"]}
applications:
  shop:
    groups: [everywhere]
    services:
      web: {provider: process, command: [sleep, "1"]}
      db: {provider: process, command: [sleep, "1"], target: stopped}
  ledger:
    groups: [some]
    services:
      api: {provider: process, command: [sleep, "1"]}
"""


@pytest.mark.parametrize(
    ("status", "target", "online", "expected"),
    [
        (S.RUNNING, T.RUNNING, True, Bucket.OK),
        (S.STARTING, T.RUNNING, True, Bucket.OK),  # on its way: not drift
        (S.STOPPED, T.STOPPED, True, Bucket.OK),
        (S.STOPPED, T.RUNNING, True, Bucket.DRIFTED),
        (S.RUNNING, T.STOPPED, True, Bucket.DRIFTED),
        (S.VANISHED, T.RUNNING, True, Bucket.DRIFTED),
        (S.FAILED, T.RUNNING, True, Bucket.FAILED),
        (S.FAILED, T.RUNNING, False, Bucket.FAILED),  # the last word from it was a failure
        (S.RUNNING, T.RUNNING, False, Bucket.UNKNOWN),  # its host is silent: we cannot say
        (None, T.RUNNING, True, Bucket.UNKNOWN),
        (S.UNKNOWN, T.STOPPED, True, Bucket.UNKNOWN),
    ],
)
def test_each_placement_falls_in_exactly_one_bucket(
    status: ServiceStatus | None, target: TargetStatus, online: bool, expected: Bucket
) -> None:
    assert bucket(status, target, online) is expected


def test_counts_add_up() -> None:
    counts = Counts()
    for which in (Bucket.OK, Bucket.OK, Bucket.FAILED):
        counts.add(which)
    assert (counts.ok, counts.failed, counts.total) == (2, 1, 3)
    assert counts.has(Bucket.FAILED) and not counts.has(Bucket.DRIFTED)


def test_counts_kept_change_by_change_are_the_counts_of_everything() -> None:
    """The overview's counts follow the fleet host by host (a page under a stream of state
    changes must not count 200,000 placements): after every burst of changes of every kind
    they equal a count of every placement from scratch."""
    rng = random.Random(8)
    fleet = FleetView(Bus(BusSettings(url="nats://127.0.0.1:1"), Counters()))
    config = load_files({"fleet.yaml": FLEET.encode()}, revision="r1")
    clock = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    hosts = [f"h{i:02d}" for i in range(30)]

    def record(host: str, heartbeat_at: datetime) -> None:
        fleet.apply(subjects.host_key(host), encode(host_record(host, heartbeat_at, 10)))

    def state(host: str, app: str, service: str) -> None:
        status = rng.choice([S.RUNNING, S.STOPPED, S.FAILED, S.UNKNOWN, S.STARTING])
        reported = service_state(host, app, service, status, clock)
        fleet.apply(subjects.service_key(host, app, service), encode(reported))

    def pictures(overrides: list[Override]) -> list[ApplicationPicture]:
        return [
            ApplicationPicture(config, fleet, name, app, clock, overrides)
            for name, app in sorted(config.applications.items())
        ]

    for host in hosts[:20]:
        record(host, clock)
    stop_web = Override(
        id="o1",
        application="shop",
        service="web",
        host=None,
        status=T.STOPPED,
        reason="m",
        created_by="alice",
        created_at=clock,
        expires_at=clock + timedelta(hours=1),
    )
    for burst in range(60):
        overrides = [stop_web] if burst % 20 >= 10 else []
        for _ in range(rng.randint(0, 12)):
            host = rng.choice(hosts)
            draw = rng.random()
            if draw < 0.7:
                app, service = rng.choice([("shop", "web"), ("shop", "db"), ("ledger", "api")])
                state(host, app, service)
            elif draw < 0.85:  # heartbeats of a host: fresh, or long ago (offline at a sweep)
                record(host, clock - timedelta(seconds=rng.choice([0, 0, 300])))
            elif draw < 0.95:
                fleet.sweep(clock)
            else:
                fleet.apply(subjects.host_key(host), None)  # gone from the fleet
        for picture in pictures(overrides):
            every = set(fleet.hosts) | set(hosts)
            assert picture.counts() == picture.counts(every), (burst, picture.name)
