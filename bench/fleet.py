"""Fleet-scale figures: `drover sim` hosts (the real agent, each with its own enrollment and
connection) against a real `drover server` and nats-server, each beside the raw ceiling of the
same bus measured in the same run.

    python -m bench.fleet [--agents 1000,10000] [--pings 10] [--idle 30] [--out FILE]

What runs, each a process of its own: nats-server (TLS, operator mode, as `drover dev` runs
it); `drover server` (SQLite), with one application `sim` of 20 services placed on every
simulated host; `drover sim`, whose processes hold 2,500 hosts each. The fleet grows to each
count of `--agents` in turn (the hosts already there stay enrolled and running).

At each count:

1. **Start.** Enrolling the new hosts (over the API, a one-time token each) and starting them,
   as `drover sim` reports it; then until the overview counts every host online and every
   placement `ok`.
2. **Idle.** `--idle` seconds with nothing asked: CPU and RSS of the server, nats-server and
   the simulation's processes (per host: the simulation's, divided).
3. **Ping-all.** `--pings` times, one after another: `POST /api/v1/actions {kind: ping}` to
   every host, then `GET` the action every 0.2 s (as `drover action` does) until no host is
   pending or dispatched: from the POST to the first answer that showed every host's result
   recorded (in the system of record: the API reads it from there). Every host must have
   succeeded.
4. **Reconnect storm.** nats-server stopped and started again on its port: from the stop
   until every host's record says it connected since the restart and the overview counts
   every host online and every service `ok` again.
5. **Raw fan-out ceiling.** The simulation stopped, as many nats-py clients as hosts, each with
   its own connection (TLS and a JWT, as an agent's), spread over as many processes, answer
   every message on one subject; one message is published to it with a reply subject, and
   the time until the last answer arrived is taken, `--pings` times.

Prints a markdown summary and writes every figure as JSON (`--out`). Nearest-rank
percentiles: with 10 pings, p90 is the 9th value and p99 the 10th.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.busauth import EVERYTHING, connect_options

from bench.procs import Child, cpu_ticks, rss_bytes, sample_idle, spawn
from bench.stack import clean_env, drover_binary, machine, start_drover, wait_until
from bench.stats import Summary
from drover.bus.embedded import EmbeddedNats
from drover.bus.trust.keys import KeyPair, Kind
from drover.ops.cancels import bounded
from drover.sim.launch import HOSTS_PER_PROCESS, application_file

SERVICES = 20
HEARTBEAT = 10.0
POLL = 0.2  # seconds between two looks at a ping's action, as `drover action` looks
PING_BOUND = 300.0
START_BOUND = 1500.0  # for a count's hosts to be enrolled, running and counted
SUBJECT = "bench.fanout"


@dataclass(frozen=True)
class Options:
    agents: tuple[int, ...]
    pings: int
    idle: float
    out: Path | None


async def api_token(http: httpx.AsyncClient) -> str:
    """An admin's API token for `drover sim`, made through the signed-in session."""
    csrf = http.cookies.get("drover_csrf") or ""
    made = await http.post(
        "/api/v1/tokens", json={"name": "bench-sim"}, headers={"X-CSRF-Token": csrf}
    )
    made.raise_for_status()
    secret: str = made.json()["secret"]
    return secret


async def start_sim(
    tmp: Path, base: str, token: str, agents: int
) -> tuple[Child, dict[str, float]]:
    """`drover sim` with `agents` hosts; what it said about enrolling and starting them."""
    argv = [drover_binary(), "sim", "--agents", str(agents), "--server", base]
    argv += ["--data-dir", str(tmp / "sim"), "--heartbeat", str(HEARTBEAT)]
    log = tmp / f"sim-{agents}.log"
    sim = await spawn("sim", argv, log, clean_env({"DROVER_TOKEN": token}))
    loop = asyncio.get_running_loop()
    end = loop.time() + START_BOUND
    while "simulated hosts running" not in log.read_text():
        if not sim.alive() or loop.time() > end:
            raise RuntimeError(f"drover sim did not start {agents} hosts: {sim.tail()}")
        await asyncio.sleep(0.5)
    said = log.read_text()
    figures = {"enrolled": 0.0, "enroll_s": 0.0, "start_s": 0.0}
    for line in said.splitlines():
        words = line.split()
        if line.startswith("enrolled "):
            figures["enrolled"], figures["enroll_s"] = float(words[1]), float(words[4])
        if "simulated hosts running" in line:
            figures["start_s"] = float(line.split("(")[1].split()[0])
    return sim, figures


async def everyone_counted(http: httpx.AsyncClient, agents: int) -> bool:
    overview = (await http.get("/api/v1/overview")).json()
    ok = sum(app["counts"]["ok"] for app in overview["applications"] if app["name"] == "sim")
    return bool(overview["hosts"]["online"] == agents and ok == agents * SERVICES)


async def ping_all(http: httpx.AsyncClient, agents: int) -> float:
    """Seconds from the POST to the first look that found every host's answer recorded."""
    began = time.perf_counter()
    sent = await http.post(
        "/api/v1/actions",
        json={"kind": "ping", "application": "sim"},
        headers={"X-CSRF-Token": http.cookies.get("drover_csrf") or ""},
    )
    sent.raise_for_status()
    action_id = sent.json()["id"]
    while True:
        action = (await http.get(f"/api/v1/actions/{action_id}")).json()
        if action["state"] != "running":
            elapsed = time.perf_counter() - began
            break
        if time.perf_counter() - began > PING_BOUND:
            raise TimeoutError(f"ping {action_id}: not answered within {PING_BOUND:.0f} s")
        await asyncio.sleep(POLL)
    outcomes = [host["outcome"] for host in action["hosts"]]
    if len(outcomes) != agents or set(outcomes) != {"succeeded"}:
        raise RuntimeError(f"ping {action_id}: {len(outcomes)} hosts, outcomes {set(outcomes)}")
    return elapsed


async def raw_fan_out(tmp: Path, bus: EmbeddedNats, agents: int, pings: int) -> list[float]:
    """The ceiling: `agents` nats-py clients answering one subject (bench/responders.py)."""
    assert bus.security is not None
    key = KeyPair.create(Kind.USER)
    jwt = bus.security.authority.issue_user("bench", key.public_key, EVERYTHING, None)
    processes = max(1, -(-agents // HOSTS_PER_PROCESS))
    workers = []
    for index in range(processes):
        count = len(range(index, agents, processes))
        settings = {
            "url": bus.url,
            "ca": str(bus.security.certificate.ca_file),
            "jwt": jwt,
            "seed": key.seed.decode(),
            "count": count,
            "subject": SUBJECT,
        }
        argv = [sys.executable, "-m", "bench.responders", json.dumps(settings)]
        workers.append(
            await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        )
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await bounded(worker.stdout.readline(), START_BOUND)
            if line.strip() != b"ready":
                raise RuntimeError("a responder process did not start")
        import nats

        client = await nats.connect(**connect_options(bus))
        try:
            return [await _fan_out_once(client, agents) for _ in range(pings)]
        finally:
            await client.close()
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
        for worker in workers:
            await bounded(worker.wait(), 60)


async def _fan_out_once(client: Any, agents: int) -> float:
    inbox = client.new_inbox()
    answered = 0
    everyone = asyncio.Event()

    async def count(_msg: Any) -> None:
        nonlocal answered
        answered += 1
        if answered == agents:
            everyone.set()

    sub = await client.subscribe(inbox, cb=count)
    await client.flush()
    began = time.perf_counter()
    await client.publish(SUBJECT, b"ping", reply=inbox)
    await bounded(everyone.wait(), PING_BOUND)
    elapsed = time.perf_counter() - began
    await sub.unsubscribe()
    await asyncio.sleep(0.5)  # the next one on a quiet bus
    return elapsed


async def reconnect_storm(
    bus: EmbeddedNats, server: Child, sim: Child, http: httpx.AsyncClient, agents: int
) -> float:
    """nats-server stopped and started again on its port under every agent: seconds from the
    stop until every host is connected again since the restart (its record says so) and the
    overview counts every host online and every service `ok`."""
    began = time.perf_counter()
    restarted = datetime.now(UTC)
    port = bus.port
    await bus.stop()
    bus.port = port
    await bus.start()

    async def back() -> bool:
        response = await http.get("/connections", params={"limit": 10_000})
        response.raise_for_status()
        since = [c["connected_since"] for c in response.json() if c["connected_since"]]
        anew = sum(1 for s in since if datetime.fromisoformat(s) > restarted)
        return anew == agents and await everyone_counted(http, agents)

    await wait_until("every agent back", back, START_BOUND, [server, sim], interval=0.5)
    return time.perf_counter() - began


def worker_pids(sim: Child) -> list[int]:
    """The simulation's processes (the children of `drover sim`)."""
    children = Path(f"/proc/{sim.pid}/task/{sim.pid}/children").read_text().split()
    return [int(pid) for pid in children]


async def at_count(
    tmp: Path,
    bus: EmbeddedNats,
    server: Child,
    http: httpx.AsyncClient,
    token: str,
    base: str,
    agents: int,
    opts: Options,
) -> dict[str, Any]:
    began = time.perf_counter()
    sim, said = await start_sim(tmp, base, token, agents)
    try:
        await wait_until(
            f"{agents} hosts counted",
            lambda: everyone_counted(http, agents),
            START_BOUND,
            [server, sim],
            interval=1.0,
        )
        counted_s = time.perf_counter() - began
        pids = {"server": server.pid, "nats": bus.pid() or 0}
        pids |= {f"sim{n}": pid for n, pid in enumerate(worker_pids(sim))}
        idle = await sample_idle(pids, opts.idle)
        sim_ticks = sum(f.ticks for name, f in idle.items() if name.startswith("sim"))
        sim_rss = sum(f.rss_mb_mean for name, f in idle.items() if name.startswith("sim"))
        pings = [await ping_all(http, agents) for _ in range(opts.pings)]
        storm = await reconnect_storm(bus, server, sim, http, agents)
    finally:
        await sim.stop(timeout=60)
    raw = await raw_fan_out(tmp, bus, agents, opts.pings)
    seconds = idle["server"].seconds
    return {
        "agents": agents,
        "start": said | {"counted_s": counted_s},
        "idle": {name: fig.as_dict() for name, fig in idle.items()},
        "sim_cpu_percent_per_1000_hosts": 100.0
        * sim_ticks
        / os.sysconf("SC_CLK_TCK")
        / seconds
        / agents
        * 1000,
        "sim_rss_mb_per_host": sim_rss / agents,
        "ping_all_s": Summary.of(pings).as_dict(),
        "ping_all_samples_s": pings,
        "reconnect_storm_s": storm,
        "raw_fan_out_s": Summary.of(raw).as_dict(),
        "raw_fan_out_samples_s": raw,
    }


async def run(opts: Options) -> dict[str, Any]:
    results = []
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="drover-bench-fleet-"))
        stack.callback(shutil.rmtree, tmp, True)
        (tmp / "config" / "applications").mkdir(parents=True)
        (tmp / "config" / "applications" / "sim.yaml").write_text(application_file(SERVICES))
        drover = await start_drover(stack, tmp)
        bus, server, http, base = drover.bus, drover.server, drover.http, drover.base
        token = await api_token(http)
        for agents in opts.agents:
            results.append(await at_count(tmp, bus, server, http, token, base, agents, opts))
            print(summary_line(results[-1]), file=sys.stderr, flush=True)
        server_rss = rss_bytes(server.pid) / 2**20
        server_cpu_s = cpu_ticks(server.pid) / os.sysconf("SC_CLK_TCK")
    return {
        "machine": machine(),
        "options": {"agents": list(opts.agents), "pings": opts.pings, "idle_s": opts.idle},
        "services_per_host": SERVICES,
        "heartbeat_s": HEARTBEAT,
        "counts": results,
        "server_rss_mib_at_end": server_rss,
        "server_cpu_s_total": server_cpu_s,
    }


def summary_line(result: dict[str, Any]) -> str:
    ping, raw = result["ping_all_s"], result["raw_fan_out_s"]
    return (
        f"{result['agents']} agents: ping-all p50 {ping['median']:.2f} s p99 {ping['p99']:.2f} s; "
        f"raw fan-out p50 {raw['median']:.3f} s p99 {raw['p99']:.3f} s; "
        f"enrolled {result['start']['enrolled']:.0f} in {result['start']['enroll_s']:.1f} s, "
        f"all counted after {result['start']['counted_s']:.1f} s"
    )


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1000,10000", help="counts, comma-separated")
    parser.add_argument("--pings", type=int, default=10)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    counts = tuple(sorted(int(n) for n in args.agents.split(",")))
    return Options(counts, args.pings, args.idle, args.out)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    result = asyncio.run(run(opts))
    text = json.dumps(result, indent=2)
    if opts.out is not None:
        opts.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
