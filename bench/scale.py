"""The server at fleet scale without agents: 10,000 hosts × 20 services in the state bucket, as
agents write them (bench/synthetic.py). Its memory, how many state changes a second it takes,
its API while it takes them, and its cold start; each beside the raw ceiling of the same bus,
measured in the same run.

    python -m bench.scale [--hosts 10000] [--services 20] [--changes 200000]
                          [--steady-rate 5000] [--steady-s 30] [--out FILE]

What runs, each a process of its own: nats-server (TLS, operator mode); `drover server`
(SQLite), whose config places every application on every host from the start; and
bench/publisher.py, which publishes the state changes as agents do (core publishes into the
state bucket's stream). Steps:

1. **Load.** The fleet's 210,000 KV writes (1,000 in flight), until the overview counts every
   host online and every placement where it was put. Then the server's RSS and CPU over IDLE
   seconds with nothing asked of it.
2. **Ingest.** `--changes` service state changes (the first placements, host by host, each
   reported stopped) published as fast as one publisher can, then a marker: the first host's
   record with a new agent version. The server's rate is the count over the time from the
   first publish to the moment GET /api/v1/hosts/node-00000 (every 20 ms) shows the marker:
   the server takes the bucket's entries in order, so it has taken every change by then.
3. **Raw ceiling.** The server stopped (SIGSTOP), the same number of changes (reported running
   again) to a nats-py KV watch in this process (an ordered consumer, as the server's), which
   only counts them; the same measure. The server is then continued and catches up.
4. **API under ingest.** The publisher at `--steady-rate` changes a second for `--steady-s`
   seconds; meanwhile, one request after another on one kept-alive connection, GET
   /api/v1/overview and GET /api/v1/applications/app00/grid?offset=0&limit=100 (the
   application page's first page), alternately. The same requests with no ingest before, as
   the floor.
5. **Cold start.** The server stopped (SIGTERM) and started again on the same database and
   bus: the time until GET /healthz answers 200, and until the overview counts every host
   online and every placement with a state; its RSS then.

Prints a markdown summary and writes every figure as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from tests.busauth import superuser_client, write_creds

from bench.procs import CLK_TCK, cpu_ticks, rss_bytes, sample_idle
from bench.stack import Drover, healthy, machine, spawn_server, start_drover, wait_until
from bench.stats import Summary
from bench.synthetic import (
    SERVICES_PER_APP,
    application_files,
    counted,
    fleet_files,
    host_id,
    populate,
)
from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.ops.cancels import bounded

IDLE = 10.0  # seconds the loaded server is watched with nothing asked of it
LOAD_BOUND = 600.0  # the fleet's writes → every placement counted
INGEST_BOUND = 600.0  # the first change published → the last taken
MARKER_POLL = 0.02  # seconds between two looks for the marker
FLOOR_S = 10.0  # seconds of API requests with no ingest
START_BOUND = 120.0  # a publisher process encoding its changes
READY_POLL = 0.5  # seconds between two overviews while the server starts (each costs it)
APPLICATION = "app00"
REQUESTS = {
    "overview": "/api/v1/overview",
    "application": f"/api/v1/applications/{APPLICATION}/grid?offset=0&limit=100",
}
MARKED_HOST = host_id(0)


@dataclass(frozen=True)
class Options:
    hosts: int
    services: int
    changes: int
    steady_rate: int
    steady_s: float
    out: Path | None

    @property
    def applications(self) -> int:
        return self.services // SERVICES_PER_APP

    @property
    def placements(self) -> int:
        return self.hosts * self.applications * SERVICES_PER_APP


async def marked(http: httpx.AsyncClient, marker: str) -> float:
    """time.time() when the server first showed the marker (it has taken what came before)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + INGEST_BOUND
    while loop.time() < end:
        response = await http.get(f"/api/v1/hosts/{MARKED_HOST}")
        response.raise_for_status()
        if response.json()["agent_version"] == marker:
            return time.time()
        await asyncio.sleep(MARKER_POLL)
    raise TimeoutError(f"the server did not take the marker {marker} in {INGEST_BOUND:.0f} s")


async def overview(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(REQUESTS["overview"])
    response.raise_for_status()
    return dict(response.json())


def every_placement_known(found: dict[str, Any], opts: Options) -> bool:
    """Every host online and every placement with a state (of whatever status)."""
    hosts = found["hosts"]
    known = sum(
        app["counts"][bucket]
        for app in found["applications"]
        for bucket in ("ok", "drifted", "failed")
    )
    unknown = sum(app["counts"]["unknown"] for app in found["applications"])
    return bool(
        hosts["total"] == hosts["online"] == opts.hosts
        and known == opts.placements
        and unknown == 0
    )


class Publisher:
    """bench/publisher.py in a process of its own, its changes encoded and ready to go."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, drover: Drover, opts: Options, count: int, status: str, rate: int, marker: str
    ) -> Publisher:
        bus = drover.bus
        assert bus.security is not None
        creds = drover.tmp / "publisher.creds"
        if not creds.exists():
            write_creds(bus, creds)
        settings = {
            "url": bus.url,
            "ca": str(bus.security.certificate.ca_file),
            "creds": str(creds),
            "hosts": opts.hosts,
            "applications": opts.applications,
            "count": count,
            "status": status,
            "rate": rate,
            "marker": marker,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.publisher",
            json.dumps(settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        publisher = cls(process)
        line = await bounded(publisher._line(), START_BOUND)
        if line != "ready":
            raise RuntimeError(f"the publisher did not start: {line!r}")
        return publisher

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def sent(self) -> tuple[float, float]:
        """time.time() of the first and the last publish, once it has sent them all."""
        line = await bounded(self._line(), INGEST_BOUND)
        word, first, last = line.split()
        if word != "sent":
            raise RuntimeError(f"the publisher said {line!r}")
        await bounded(self.process.wait(), 30)
        return float(first), float(last)

    async def _line(self) -> str:
        assert self.process.stdout is not None
        return (await self.process.stdout.readline()).decode().strip()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def ingest(drover: Drover, opts: Options) -> dict[str, Any]:
    """The server's rate: `opts.changes` changes as fast as the publisher sends them."""
    publisher = await Publisher.start(drover, opts, opts.changes, "stopped", 0, "ingest")
    try:
        ticks = cpu_ticks(drover.server.pid)
        publisher.go()
        done = await marked(drover.http, "ingest")
        first, last = await publisher.sent()
    finally:
        publisher.kill()
    return {
        "changes": opts.changes,
        "publish_s": last - first,
        "taken_s": done - first,
        "events_per_s": opts.changes / (done - first),
        "server_cpu_percent": 100
        * (cpu_ticks(drover.server.pid) - ticks)
        / CLK_TCK
        / (done - first),
    }


async def raw_ingest(drover: Drover, opts: Options) -> dict[str, Any]:
    """The ceiling: a nats-py KV watch that only counts, the server stopped meanwhile."""
    client = await superuser_client(drover.bus)
    arrived = 0
    all_in = asyncio.Event()
    last_at = 0.0

    async def count(_msg: Msg) -> None:
        nonlocal arrived, last_at
        arrived += 1
        if arrived == opts.changes:
            last_at = time.time()
            all_in.set()

    publisher = await Publisher.start(drover, opts, opts.changes, "running", 0, "raw")
    sub = await client.jetstream().subscribe(
        f"$KV.{subjects.STATE_BUCKET}.svc.>",
        cb=count,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    os.kill(drover.server.pid, signal.SIGSTOP)
    try:
        publisher.go()
        await bounded(all_in.wait(), INGEST_BOUND)
        first, last = await publisher.sent()
    finally:
        os.kill(drover.server.pid, signal.SIGCONT)
        publisher.kill()
        await sub.unsubscribe()
        await client.close()
    caught_up = time.time()
    await marked(drover.http, "raw")
    return {
        "changes": opts.changes,
        "publish_s": last - first,
        "taken_s": last_at - first,
        "events_per_s": opts.changes / (last_at - first),
        "server_catch_up_s": time.time() - caught_up,
    }


async def api_samples(
    http: httpx.AsyncClient, until: asyncio.Future[Any] | float
) -> dict[str, list[float]]:
    """Each request in turn, one after another, until `until` is done (or for that many s)."""
    samples: dict[str, list[float]] = {name: [] for name in REQUESTS}
    loop = asyncio.get_running_loop()
    end = loop.time() + until if isinstance(until, float) else None

    def going() -> bool:
        return loop.time() < end if end is not None else not until.done()  # type: ignore[union-attr]

    while going():
        for name, path in REQUESTS.items():
            began = time.perf_counter()
            response = await http.get(path)
            response.raise_for_status()
            samples[name].append(1000 * (time.perf_counter() - began))
    return samples


async def api_under_ingest(drover: Drover, opts: Options) -> dict[str, Any]:
    floor = await api_samples(drover.http, FLOOR_S)
    count = int(opts.steady_rate * opts.steady_s)
    publisher = await Publisher.start(drover, opts, count, "stopped", opts.steady_rate, "steady")
    try:
        ticks = cpu_ticks(drover.server.pid)
        began = time.time()
        publisher.go()
        sending = asyncio.ensure_future(publisher.sent())
        loaded = await api_samples(drover.http, sending)
        first, last = await sending
        cpu = 100 * (cpu_ticks(drover.server.pid) - ticks) / CLK_TCK / (time.time() - began)
    finally:
        publisher.kill()
    done = await marked(drover.http, "steady")
    return {
        "rate": opts.steady_rate,
        "changes": count,
        "publish_s": last - first,
        "lag_after_last_s": done - last,
        "server_cpu_percent": cpu,
        "floor_ms": {name: Summary.of(values).as_dict() for name, values in floor.items()},
        "under_ingest_ms": {name: Summary.of(values).as_dict() for name, values in loaded.items()},
    }


async def cold_start(drover: Drover, opts: Options) -> dict[str, Any]:
    await drover.server.stop()
    began = time.monotonic()
    server = await spawn_server(drover.tmp, drover.bus, drover.port)
    drover.server = server
    await wait_until("server healthy again", lambda: healthy(drover.base), 120, [server], 0.05)
    healthy_s = time.monotonic() - began
    await wait_until(
        "every placement known again",
        lambda: _known(drover.http, opts),
        LOAD_BOUND,
        [server],
        READY_POLL,
    )
    ready_s = time.monotonic() - began
    return {"healthy_s": healthy_s, "ready_s": ready_s, "rss_mib": rss_bytes(server.pid) / 2**20}


async def _known(http: httpx.AsyncClient, opts: Options) -> bool:
    return every_placement_known(await overview(http), opts)


async def run(opts: Options) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="drover-bench-scale-"))
        stack.callback(shutil.rmtree, tmp, True)
        (tmp / "config").mkdir()
        files = fleet_files(opts) | application_files(opts)
        for name, text in files.items():
            (tmp / "config" / name).write_text(text)
        drover = await start_drover(stack, tmp)
        stack.push_async_callback(lambda: drover.server.stop())  # the one running at the end

        began = time.monotonic()
        expected, put_s = await populate(drover.bus, opts)

        async def all_counted() -> bool:
            return counted(await overview(drover.http), opts, expected)

        await wait_until("every placement counted", all_counted, LOAD_BOUND, [drover.server], 1.0)
        load_s = time.monotonic() - began
        idle = (await sample_idle({"server": drover.server.pid}, IDLE))["server"]
        nats_rss = _nats_rss(drover.bus)
        step("loaded", f"{load_s:.1f} s, server RSS {idle.rss_mb_max:.0f} MB")
        took = await ingest(drover, opts)
        step("ingest", f"{took['events_per_s']:.0f}/s")
        raw = await raw_ingest(drover, opts)
        step("raw ingest", f"{raw['events_per_s']:.0f}/s")
        api = await api_under_ingest(drover, opts)
        step("API under ingest", json.dumps(api["under_ingest_ms"]))
        start = await cold_start(drover, opts)
        step("cold start", f"healthy {start['healthy_s']:.2f} s, ready {start['ready_s']:.2f} s")
    return {
        "machine": machine(),
        "options": {
            "hosts": opts.hosts,
            "services_per_host": opts.services,
            "placements": opts.placements,
            "changes": opts.changes,
            "steady_rate": opts.steady_rate,
            "steady_s": opts.steady_s,
        },
        "load": {
            "put_s": put_s,
            "counted_s": load_s,
            "idle": idle.as_dict(),
            "nats_rss_mb": nats_rss,
        },
        "ingest": took,
        "raw_ingest": raw,
        "api": api,
        "cold_start": start,
    }


def _nats_rss(bus: EmbeddedNats) -> float | None:
    pid = bus.pid()
    return rss_bytes(pid) / 1e6 if pid else None


def step(what: str, figure: str) -> None:
    print(f"scale: {what}: {figure}", file=sys.stderr, flush=True)


def figures(result: dict[str, Any]) -> dict[str, float]:
    """This benchmark's keys of docs/benchmarks.json."""
    api = result["api"]["under_ingest_ms"]
    return {
        "server_rss_10k_mib": max(result["load"]["idle"]["rss_mb_samples"]) * 1e6 / 2**20,
        "cold_start_10k_s": result["cold_start"]["ready_s"],
        "ingest_events_per_s": result["ingest"]["events_per_s"],
        "ingest_raw_per_s": result["raw_ingest"]["events_per_s"],
        "api_overview_p99_ms": api["overview"]["p99"],
        "api_application_p99_ms": api["application"]["p99"],
    }


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=20, help="per host (even)")
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--steady-rate", type=int, default=5_000, help="changes a second")
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.services < SERVICES_PER_APP or args.services % SERVICES_PER_APP:
        parser.error(f"--services: a multiple of {SERVICES_PER_APP}")
    opts = Options(
        args.hosts, args.services, args.changes, args.steady_rate, args.steady_s, args.out
    )
    if not 0 < opts.changes <= opts.placements:
        parser.error(f"--changes: between 1 and the placements ({opts.placements})")
    if not 0 < opts.steady_rate * opts.steady_s <= opts.placements:
        parser.error("--steady-rate × --steady-s: between 1 and the placements")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    # nats-py's TLS connections, closed, make asyncio say so once each: not news here.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    result = asyncio.run(run(opts))
    result["figures"] = figures(result)
    text = json.dumps(result, indent=2)
    if opts.out is not None:
        opts.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
