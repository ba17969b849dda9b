"""`drover sim`: enroll N simulated hosts with a server, then run them over P processes.

Each host enrolls as a real one does: an admin's API token makes a one-time enrollment token
bound to that host, and the host's own key proves itself with it (agent/enrollment.py), so each
gets its own bus identity and the server makes its consumers. A host enrolled by an earlier run
(its folder below the data dir holds the enrollment) is not enrolled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drover.agent.enrollment import Enrollment, EnrollmentRefused, NotEnrolled, enroll
from drover.sim.hosts import host_names

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

ENROLL_CONCURRENCY = 32
ENROLL_TIMEOUT = 60.0  # seconds for one request
ENROLL_TRIES = 3
HOSTS_PER_PROCESS = 2500  # the default spread; each process is one event loop (one core at most)
APPLICATION = "sim"


class SimError(Exception):
    """A failure to report to the person who ran `drover sim`, without a traceback."""


@dataclass(frozen=True)
class SimSettings:
    server_url: str
    admin_token: str  # an admin's API token: it makes the enrollment tokens
    data_dir: Path
    agents: int
    processes: int = 0  # 0: one per HOSTS_PER_PROCESS hosts
    prefix: str = "sim-"
    heartbeat_interval: float = 10.0
    flap_rate: float = 0.0
    enroll_concurrency: int = ENROLL_CONCURRENCY

    nats_url: str | None = None  # instead of the URLs the hosts' enrollments gave them

    @property
    def hosts(self) -> list[str]:
        return host_names(self.prefix, self.agents)


def application_file(services: int, prefix: str = "sim-") -> str:
    """A config file placing `services` services of one application on every simulated host
    (their commands never run: the simulated provider stands in for `process`)."""
    lines = [
        "# Written by `drover sim --config`: every simulated host runs these.",
        "groups:",
        "  simulated:",
        f"    hosts: ['{prefix}*']",
        "applications:",
        f"  {APPLICATION}:",
        "    description: Services of the simulated hosts (drover sim).",
        "    groups: [simulated]",
        "    services:",
    ]
    for index in range(services):
        lines += [
            f"      svc{index:02d}:",
            "        provider: process",
            "        command: [sleep, infinity]",
        ]
    return "\n".join(lines) + "\n"


async def enroll_all(settings: SimSettings, hosts: Sequence[str]) -> int:
    """Enroll every host that is not yet; how many were."""
    import httpx

    missing = [host for host in hosts if not _enrolled(settings.data_dir / host, host)]
    if not missing:
        return 0
    gate = asyncio.Semaphore(settings.enroll_concurrency)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    # A server enrolling thousands of hosts at once answers slowly: patience, and a few tries.
    admin = httpx.AsyncClient(base_url=settings.server_url, headers=headers, timeout=ENROLL_TIMEOUT)
    # The hosts' own requests carry no one's token, as a real host's would not.
    anyone = httpx.AsyncClient(base_url=settings.server_url, timeout=ENROLL_TIMEOUT)
    async with admin as http, anyone:

        async def one(host: str) -> None:
            async with gate:
                for attempt in range(1, ENROLL_TRIES + 1):
                    try:
                        await _enroll_one(settings, host, http, anyone)
                        return
                    except SimError:
                        if attempt == ENROLL_TRIES:
                            raise

        async with asyncio.TaskGroup() as tg:
            for host in missing:
                tg.create_task(one(host))
    return len(missing)


async def _enroll_one(
    settings: SimSettings, host: str, admin: httpx.AsyncClient, anyone: httpx.AsyncClient
) -> None:
    """A one-time token made for `host`, and the host enrolled with it. Tried again after a
    failure, this makes a new token (one made for the host may replace its key)."""
    import httpx

    try:
        made = await admin.post("/api/v1/enrollment-tokens", json={"host": host})
    except httpx.HTTPError as err:
        raise SimError(f"cannot reach {settings.server_url}: {err!r}") from None
    if made.status_code != 201:
        raise SimError(
            f"the server would not make an enrollment token ({made.status_code}): "
            f"{made.text[:200]}; the token given must be an admin's"
        )
    try:
        await enroll(
            settings.server_url,
            host,
            settings.data_dir / host,
            made.json()["token"],
            client=anyone,
        )
    except EnrollmentRefused as err:
        raise SimError(f"host {host}: {err}") from None


def _enrolled(data_dir: Path, host: str) -> bool:
    try:
        return Enrollment.load(data_dir).host == host
    except NotEnrolled:
        return False


@dataclass
class Report:
    enrolled: int = 0
    enroll_s: float = 0.0
    ready_s: float = 0.0  # from the first process launched until every host runs
    processes: int = 0


async def run(settings: SimSettings, stop: asyncio.Event, say: bool = True) -> Report:
    """Enroll, start the processes, wait for `stop`, stop them (each host drains)."""
    report = Report()
    hosts = settings.hosts
    began = time.monotonic()
    try:
        report.enrolled = await enroll_all(settings, hosts)
    except* SimError as group:
        raise group.exceptions[0] from None
    report.enroll_s = time.monotonic() - began
    if say and report.enrolled:
        print(f"enrolled {report.enrolled} hosts in {report.enroll_s:.1f} s", file=sys.stderr)
    count = min(settings.processes or -(-len(hosts) // HOSTS_PER_PROCESS), len(hosts))
    report.processes = count
    started = time.monotonic()
    workers = [await _spawn(settings, index, count) for index in range(count)]
    try:
        await _until_ready(workers, stop)
        report.ready_s = time.monotonic() - started
        if say and not stop.is_set():
            print(
                f"{len(hosts)} simulated hosts running in {count} processes "
                f"({report.ready_s:.1f} s to start); Ctrl-C stops them",
                file=sys.stderr,
            )
        await stop.wait()
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.terminate()
        for worker in workers:
            await worker.wait()
    return report


async def _spawn(settings: SimSettings, index: int, processes: int) -> asyncio.subprocess.Process:
    share = {
        "data_dir": str(settings.data_dir),
        "prefix": settings.prefix,
        "agents": settings.agents,
        "index": index,
        "processes": processes,
        "heartbeat_interval": settings.heartbeat_interval,
        "flap_rate": settings.flap_rate / processes,
        "nats_url": settings.nats_url,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drover.sim.worker",
        json.dumps(share),
        stdin=asyncio.subprocess.PIPE,  # closed when this process ends, however: they stop
        stdout=asyncio.subprocess.PIPE,
    )


async def _until_ready(workers: list[asyncio.subprocess.Process], stop: asyncio.Event) -> None:
    """Until each worker said `ready` (or `stop`); SimError if one ended first."""

    async def all_ready() -> None:
        for worker in workers:
            assert worker.stdout is not None
            async for line in worker.stdout:
                if line.strip() == b"ready":
                    break
            else:
                code = await worker.wait()
                raise SimError(f"a simulation process ended (exit {code}) before it ran")

    async def stopped() -> None:
        await stop.wait()

    waiting = asyncio.create_task(all_ready())
    stopping = asyncio.create_task(stopped())
    await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if waiting.done():
        waiting.result()
        return
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
