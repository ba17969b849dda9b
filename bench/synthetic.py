"""A synthetic fleet for the benchmarks that need thousands of hosts and no agent: each host's
record and each service's state written into the state KV bucket as an agent would write it
(heartbeat every hour and just now, so every host is online); 2 % of the services reported
stopped under `observe` (drifted), 0.5 % failed, the rest running. The config places
`services`/2 applications of 2 `process` services each, in two environments, on every host, and
declares labels for one host in ten."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tests.busauth import superuser_client
from tests.reports import host_record

from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import ServiceState, encode
from drover.model.status import Convergence, ServiceStatus

SERVICES_PER_APP = 2
ENVIRONMENTS = ("prod", "staging")
LABELLED_EVERY = 10  # one host in ten has labels in the config
FAILED_SHARE = 0.005
DRIFTED_SHARE = 0.02
CHUNK = 1000  # KV puts in flight at once
SEED = 20261201


class Shape(Protocol):
    """How big the fleet is."""

    @property
    def hosts(self) -> int: ...

    @property
    def applications(self) -> int: ...


@dataclass
class Expected:
    """What the overview must count once every write is in."""

    ok: int = 0
    drifted: int = 0
    failed: int = 0

    @property
    def placements(self) -> int:
        return self.ok + self.drifted + self.failed


def host_id(index: int) -> str:
    return f"node-{index:05d}"


def app_name(index: int) -> str:
    return f"app{index:02d}"


def service_names() -> list[str]:
    return ["web", "worker"][:SERVICES_PER_APP]


def fleet_files(opts: Shape) -> dict[str, str]:
    """The group that places every application on every host, and the labels of one host in
    ten: the config the server starts with, which places nothing yet."""
    labelled = [
        f"  {host_id(i)}: {{labels: {{dc: {('zrh', 'fra')[i % 2]}, rack: r{i % 40:02d}}}}}"
        for i in range(0, opts.hosts, LABELLED_EVERY)
    ]
    return {
        "groups.yaml": "groups:\n  all:\n    hosts: ['*']\n",
        "hosts.yaml": "hosts:\n" + "\n".join(labelled) + "\n" if labelled else "hosts: {}\n",
    }


def application_files(opts: Shape) -> dict[str, str]:
    """One YAML file per application, on every host, in one of the environments."""
    files = {}
    for index in range(opts.applications):
        name = app_name(index)
        lines = [
            "applications:",
            f"  {name}:",
            f"    description: Benchmark application {index}.",
            f"    owners: [team-{index % 4}]",
            f"    environment: {ENVIRONMENTS[index % len(ENVIRONMENTS)]}",
            "    groups: [all]",
            "    services:",
        ]
        for service in service_names():
            lines.append(f"      {service}: {{provider: process, command: [sleep, '3600']}}")
        files[f"{name}.yaml"] = "\n".join(lines) + "\n"
    return files


def fleet_writes(opts: Shape, expected: Expected) -> Iterator[tuple[str, bytes]]:
    """Every KV write of the fleet, host by host: its services' states, then its record."""
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    for h in range(opts.hosts):
        host = host_id(h)
        for a in range(opts.applications):
            for service in service_names():
                state = _state(rng.random(), host, app_name(a), service, now, expected)
                yield subjects.service_key(host, app_name(a), service), encode(state)
        yield subjects.host_key(host), encode(host_record(host, now))


def _state(
    draw: float, host: str, application: str, service: str, now: datetime, expected: Expected
) -> ServiceState:
    base: dict[str, Any] = {"host": host, "application": application, "service": service}
    base |= {"provider": "process", "since": now}
    if draw < FAILED_SHARE:
        expected.failed += 1
        return ServiceState(
            **base,
            status=ServiceStatus.FAILED,
            exit_code=1,
            restarts=5,
            message="exited with status 1",
            convergence=Convergence.FAILED,
        )
    if draw < FAILED_SHARE + DRIFTED_SHARE:
        expected.drifted += 1
        return ServiceState(
            **base, status=ServiceStatus.STOPPED, exit_code=0, convergence=Convergence.OBSERVED
        )
    expected.ok += 1
    pid = 1000 + int(draw * 1_000_000)
    return ServiceState(**base, status=ServiceStatus.RUNNING, pid=pid, convergence=Convergence.OK)


async def populate(bus: EmbeddedNats, opts: Shape) -> tuple[Expected, float]:
    """Write the fleet into the state bucket, CHUNK puts in flight; the seconds it took."""
    expected = Expected()
    client = await superuser_client(bus)
    try:
        kv = await client.jetstream(timeout=30).key_value(subjects.STATE_BUCKET)
        started = time.monotonic()
        chunk: list[tuple[str, bytes]] = []
        for write in fleet_writes(opts, expected):
            chunk.append(write)
            if len(chunk) == CHUNK:
                await asyncio.gather(*(kv.put(key, value) for key, value in chunk))
                chunk = []
        await asyncio.gather(*(kv.put(key, value) for key, value in chunk))
        return expected, time.monotonic() - started
    finally:
        await client.close()


def counted(overview: dict[str, Any], opts: Shape, expected: Expected) -> bool:
    """Whether the overview counts every host online and every placement where it was put."""
    totals = {"ok": 0, "drifted": 0, "failed": 0, "unknown": 0}
    for app in overview["applications"]:
        for bucket in totals:
            totals[bucket] += app["counts"][bucket]
    hosts = overview["hosts"]
    return (
        hosts["total"] == opts.hosts
        and hosts["online"] == opts.hosts
        and totals
        == {"ok": expected.ok, "drifted": expected.drifted, "failed": expected.failed}
        | {"unknown": 0}
    )
