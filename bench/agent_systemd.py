"""One real drover agent watching 200 systemd units: its idle RSS and CPU, and the latency from a
unit's state change to the KV update, each beside a raw ceiling measured in the same run.

    python -m bench.agent_systemd [--units 200] [--samples 200] [--idle 60]

What runs, all real and each in its own process: systemd booted as PID 1 of a PID+mount
namespace (tests/systemd_namespace.py) with `--units` units (Type=simple, /bin/sleep infinity),
started before the agent; nats-server; `drover server` on a config folder that places every
unit as a service of one of four applications on one host, with `policy: observe` (so a unit
stopped from outside stays stopped, and the agent leaves each as it finds it); and `drover agent
--systemd on` talking to that systemd's bus.

1. Idle: once the server reports every unit running, and after a settling pause, RSS (VmRSS,
   sampled each second) and CPU time (utime+stime) of the agent over `--idle` seconds. In the
   same window: a bare python holding one NATS connection, and a bare python interpreter.
2. Latency: units are stopped, then started again, from outside (`systemctl` through nsenter).
   The change's time is systemd's own `StateChangeTimestamp` (CLOCK_REALTIME, µs), which the
   agent reports as `since`; the latency is from it to the wall clock when the KV write reaches
   this process, through a JetStream ordered consumer (a KV watch, as the server's) and through
   a core subscription. So the time nsenter and systemctl take is not counted.
   Raw ceiling: a KV put from this process to its delivery back to it, through the same two
   paths, on the same nats-server, as many samples.
3. Inventory: the time from the agent's launch to the first unit inventory in KV
   (`drover-inventory`) that holds every unit with the `X-Drover-*` key of its unit file, and
   how many inventories were written during the idle window and the latency phase (none is
   expected: a state change is no inventory change).

Prints a markdown table and writes every raw sample as JSON (`--out`, under the temp dir by
default). Every wait is bounded; everything started is stopped, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from pydantic import ValidationError
from tests.busauth import enroll_directly, superuser_client, write_creds
from tests.systemd_namespace import SystemdNamespace

from bench.kvtap import Arrival, Tap
from bench.procs import Child, IdleFigures, rss_bytes, sample_idle, spawn
from bench.stack import clean_env, drover_binary, machine, start_drover, wait_until
from bench.stats import Summary
from drover.bus import subjects
from drover.bus.embedded import EmbeddedNats
from drover.bus.messages import ServiceState, UnitInventory
from drover.ops.cancels import bounded

HOST = "bench-host"
APPLICATIONS = 4
RAW_BUCKET = "bench-raw"
UNIT_TEXT = "[Service]\nType=simple\nExecStart=/bin/sleep infinity\nX-Drover-Bench=yes\n"
SETTLE = 5.0  # seconds between every unit reported running and the idle window
GAP = 0.05  # seconds between two latency samples
CHANGE_BOUND = 10.0  # the longest a single change may take to reach KV before the bench fails
RUNNING_BOUND = 120.0  # agent launched → every unit reported running
TARGETS = {"rss_mb": 60.0, "cpu_percent": 0.5, "p99_s": 1.0}

# A client as bare as it gets on the same bus: TLS and a JWT, as the agent connects.
BARE_NATS = """
import asyncio, ssl, sys
import nats

async def main():
    tls = ssl.create_default_context(cafile=sys.argv[3])
    nc = await nats.connect(sys.argv[1], user_credentials=sys.argv[2], tls=tls)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
BARE_PYTHON = "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"


@dataclass(frozen=True)
class Options:
    units: int
    samples: int
    idle: float
    out: Path


@dataclass(frozen=True)
class Service:
    application: str
    service: str
    unit: str

    @property
    def key(self) -> str:
        return subjects.service_key(HOST, self.application, self.service)


def services(count: int) -> list[Service]:
    return [
        Service(f"app{i % APPLICATIONS}", f"u{i:03d}", f"bench-u{i:03d}.service")
        for i in range(count)
    ]


def config_files(placed: list[Service]) -> dict[str, str]:
    """One YAML file per application, every service a systemd unit under `policy: observe`."""
    files: dict[str, list[str]] = {}
    for svc in placed:
        lines = files.setdefault(
            svc.application,
            ["applications:", f"  {svc.application}:", f"    hosts: [{HOST}]", "    services:"],
        )
        lines.append(
            f"      {svc.service}: {{provider: systemd, unit: {svc.unit}, policy: observe}}"
        )
    return {f"{app}.yaml": "\n".join(lines) + "\n" for app, lines in files.items()}


# -- starting the pieces ---------------------------------------------------------------------


async def start_agent(tmp: Path, bus: EmbeddedNats, ns: SystemdNamespace) -> Child:
    settings = tmp / "agent.toml"
    settings.write_text("")  # named explicitly, so no /etc/drover/agent.toml is read
    await enroll_directly(bus, HOST, tmp / "agent")
    argv = [drover_binary(), "agent", "--nats", bus.url, "--host-id", HOST]
    argv += ["--data-dir", str(tmp / "agent"), "--systemd", "on", "--config-file", str(settings)]
    # The namespace's unit files (in its /run) are seen from here under its root only.
    env = clean_env(
        {"DBUS_SYSTEM_BUS_ADDRESS": ns.bus_address, "DROVER_SYSTEMD_ROOT": str(ns.root)}
    )
    return await spawn("agent", argv, tmp / "agent.log", env)


async def start_bare(tmp: Path, name: str, argv: list[str]) -> Child:
    child = await spawn(name, argv, tmp / f"{name}.log", clean_env(), stdout_pipe=True)
    assert child.process.stdout is not None
    line = await bounded(child.process.stdout.readline(), 20)
    if line.strip() != b"ready":
        raise RuntimeError(f"{name} did not start: {child.tail()}")
    return child


async def running_count(http: httpx.AsyncClient) -> int:
    response = await http.get(f"/api/v1/hosts/{HOST}")
    if response.status_code == 404:
        return 0
    response.raise_for_status()
    return sum(1 for s in response.json()["services"] if s["status"] == "running")


# -- latency ----------------------------------------------------------------------------------


def state_of(arrival: Arrival) -> ServiceState | None:
    try:
        return ServiceState.model_validate_json(arrival.data)
    except ValidationError:
        return None  # a delete, or not a service state


async def one_change(
    ns: SystemdNamespace, taps: Mapping[str, Tap], svc: Service, verb: str, status: str
) -> dict[str, Any]:
    """`systemctl <verb>` a unit from outside; time systemd's change to each tap's arrival."""
    marks = {path: tap.mark() for path, tap in taps.items()}
    issued = time.time()

    def match(arrival: Arrival) -> bool:
        state = state_of(arrival)
        return (
            arrival.key == svc.key
            and state is not None
            and state.status == status
            and state.since.timestamp() >= issued
        )

    command = asyncio.create_task(ns.systemctl_async(verb, svc.unit))
    try:
        arrivals = {
            path: await tap.first(marks[path], match, CHANGE_BOUND) for path, tap in taps.items()
        }
    except TimeoutError:
        raise RuntimeError(f"{verb} {svc.unit}: no '{status}' in KV in {CHANGE_BOUND} s") from None
    finally:
        await command
    state = state_of(arrivals["watch"])
    assert state is not None
    since = state.since.timestamp()
    record: dict[str, Any] = {"unit": svc.unit, "verb": verb, "issued_to_change_s": since - issued}
    record |= {f"{path}_s": arrival.received - since for path, arrival in arrivals.items()}
    return record


async def unit_changes(
    ns: SystemdNamespace, taps: Mapping[str, Tap], placed: list[Service], samples: int
) -> list[dict[str, Any]]:
    """samples/2 units spread over all of them, each stopped and then started again."""
    count = max(1, samples // 2)
    step = len(placed) / count
    records = []
    for index in range(count):
        svc = placed[int(index * step)]
        for verb, status in (("stop", "stopped"), ("start", "running")):
            records.append(await one_change(ns, taps, svc, verb, status))
            await asyncio.sleep(GAP)
    return records


def _has_key(key: str, arrival: Arrival) -> bool:
    return arrival.key == key


def _holds_every_unit(placed: list[Service], arrival: Arrival) -> bool:
    """An inventory with every placed unit, and what its unit file says of it."""
    try:
        inventory = UnitInventory.model_validate_json(arrival.data)
    except ValidationError:
        return False
    read = {u.unit for u in inventory.units if u.properties.get("X-Drover-Bench") == "yes"}
    return {svc.unit for svc in placed} <= read


async def raw_kv(nc: Client, samples: int, payload: bytes) -> list[dict[str, float]]:
    """The ceiling: a KV put from here to its delivery back here, on the same nats-server."""
    js = nc.jetstream()
    kv = await js.create_key_value(
        KeyValueConfig(bucket=RAW_BUCKET, history=1, storage=StorageType.FILE)
    )
    taps = {"watch": Tap(RAW_BUCKET), "core": Tap(RAW_BUCKET)}
    await taps["watch"].watch(nc, ">")
    await taps["core"].core(nc, ">")
    records = []
    try:
        for index in range(samples):
            key = f"svc.{HOST}.raw.k{index % 50:03d}"
            marks = {path: tap.mark() for path, tap in taps.items()}
            put = time.time()
            await kv.put(key, payload)
            record: dict[str, float] = {}
            for path, tap in taps.items():
                arrival = await tap.first(marks[path], partial(_has_key, key), CHANGE_BOUND)
                record[f"{path}_s"] = arrival.received - put
            records.append(record)
            await asyncio.sleep(GAP)
    finally:
        for tap in taps.values():
            await tap.close()
    return records


# -- the run ----------------------------------------------------------------------------------


async def run(opts: Options) -> dict[str, Any]:
    placed = services(opts.units)
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="drover-bench-"))
        stack.callback(shutil.rmtree, tmp, True)
        ns = await asyncio.to_thread(SystemdNamespace.boot)
        stack.callback(ns.stop)
        await asyncio.to_thread(ns.write_units, {svc.unit: UNIT_TEXT for svc in placed})
        # Started here: under `policy: observe` the agent leaves units as it finds them.
        await asyncio.to_thread(ns.systemctl, "start", *(svc.unit for svc in placed))
        for name, text in config_files(placed).items():
            (tmp / "config").mkdir(exist_ok=True)
            (tmp / "config" / name).write_text(text)

        drover = await start_drover(stack, tmp)
        bus, http = drover.bus, drover.http

        nc = await superuser_client(bus)
        stack.push_async_callback(nc.close)
        taps = {"watch": Tap(subjects.STATE_BUCKET), "core": Tap(subjects.STATE_BUCKET)}
        await taps["watch"].watch(nc, f"svc.{HOST}.>")
        await taps["core"].core(nc, f"svc.{HOST}.>")
        inventories = Tap(subjects.INVENTORY_BUCKET)
        await inventories.core(nc, subjects.inventory_key(HOST))

        launched, launched_at = time.monotonic(), time.time()
        agent = await start_agent(tmp, bus, ns)
        stack.push_async_callback(agent.stop)

        async def all_running() -> bool:
            return await running_count(http) == opts.units

        await wait_until(f"all {opts.units} units running", all_running, RUNNING_BOUND, [agent])
        startup_s = time.monotonic() - launched
        full = await inventories.first(0, partial(_holds_every_unit, placed), RUNNING_BOUND)
        inventory: dict[str, Any] = {"first_full_s": full.received - launched_at}

        write_creds(bus, tmp / "bare.creds")
        assert bus.security is not None
        ca = str(bus.security.certificate.ca_file)
        bare_argv = [sys.executable, "-c", BARE_NATS, bus.url, str(tmp / "bare.creds"), ca]
        bare_nats = await start_bare(tmp, "bare-nats", bare_argv)
        stack.push_async_callback(bare_nats.stop)
        bare_python = await start_bare(tmp, "bare-python", [sys.executable, "-c", BARE_PYTHON])
        stack.push_async_callback(bare_python.stop)
        await asyncio.sleep(SETTLE)
        pids = {"agent": agent.pid, "bare_nats": bare_nats.pid, "bare_python": bare_python.pid}
        before_idle = inventories.mark()
        idle = await sample_idle(pids, opts.idle)
        if not agent.alive():
            raise RuntimeError(f"the agent exited during the idle window: {agent.tail()}")
        inventory["writes_idle"] = inventories.mark() - before_idle

        before_changes = inventories.mark()
        changes = await unit_changes(ns, taps, placed, opts.samples)
        inventory["writes_latency_phase"] = inventories.mark() - before_changes
        await inventories.close()
        payload = taps["watch"].arrivals[-1].data  # a real state, so the sizes match
        raw = await raw_kv(nc, len(changes), payload)
        agent_rss_after_mb = rss_bytes(agent.pid) / 1e6
        return report(opts, startup_s, idle, changes, raw, agent_rss_after_mb, inventory)


# -- the report -------------------------------------------------------------------------------


def summaries(records: list[dict[str, Any]], field: str) -> Summary:
    return Summary.of([r[field] for r in records])


def report(
    opts: Options,
    startup_s: float,
    idle: dict[str, IdleFigures],
    changes: list[dict[str, Any]],
    raw: list[dict[str, float]],
    agent_rss_after_mb: float,
    inventory: dict[str, Any],
) -> dict[str, Any]:
    stops = [r for r in changes if r["verb"] == "stop"]
    starts = [r for r in changes if r["verb"] == "start"]
    latency = {
        path: {
            "both": summaries(changes, f"{path}_s").as_dict(),
            "stop": summaries(stops, f"{path}_s").as_dict(),
            "start": summaries(starts, f"{path}_s").as_dict(),
            "raw_ceiling": summaries(raw, f"{path}_s").as_dict(),
        }
        for path in ("watch", "core")
    }
    return {
        "machine": machine(),
        "setup": {
            "units": opts.units,
            "applications": APPLICATIONS,
            "policy": "observe",
            "idle_window_s": opts.idle,
            "settle_s": SETTLE,
            "agent_heartbeat_interval_s": 10.0,
            "latency_samples": len(changes),
            "directions": "each sampled unit stopped, then started, from outside",
        },
        "targets": TARGETS,
        "startup_all_running_s": startup_s,
        "idle": {name: fig.as_dict() for name, fig in idle.items()},
        "agent_rss_after_latency_mb": agent_rss_after_mb,
        "inventory": inventory,
        "latency_s": latency,
        "issued_to_change_s": summaries(changes, "issued_to_change_s").as_dict(),
        "samples": {"changes": changes, "raw": raw},
    }


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(result: dict[str, Any]) -> str:
    idle = result["idle"]
    agent, bare_nats, bare_py = idle["agent"], idle["bare_nats"], idle["bare_python"]
    lat = result["latency_s"]
    watch = Summary(**lat["watch"]["both"])
    watch_ceiling = Summary(**lat["watch"]["raw_ceiling"])
    m, s = result["machine"], result["setup"]
    rows = [
        "| figure | drover agent | raw ceiling, same run | target | |",
        "|---|---|---|---|---|",
        f"| idle RSS, mean (max) over {s['idle_window_s']:.0f} s "
        f"| {agent['rss_mb_mean']:.1f} MB ({agent['rss_mb_max']:.1f}) "
        f"| python + 1 NATS connection: {bare_nats['rss_mb_mean']:.1f} MB; "
        f"bare python: {bare_py['rss_mb_mean']:.1f} MB "
        f"| ≤ {TARGETS['rss_mb']:.0f} MB | {_met(agent['rss_mb_max'] <= TARGETS['rss_mb'])} |",
        f"| idle CPU, % of one core over {s['idle_window_s']:.0f} s "
        f"| {agent['cpu_percent_of_one_core']:.2f} % "
        f"| python + 1 NATS connection: {bare_nats['cpu_percent_of_one_core']:.2f} %; "
        f"bare python: {bare_py['cpu_percent_of_one_core']:.2f} % "
        f"| ≤ {TARGETS['cpu_percent']} % "
        f"| {_met(agent['cpu_percent_of_one_core'] <= TARGETS['cpu_percent'])} |",
    ]
    labels = {"watch": "KV watch (ordered consumer)", "core": "core subscription on `$KV.…`"}
    target = f"p99 ≤ {TARGETS['p99_s'] * 1000:.0f} ms"
    for path, label in labels.items():
        ceiling = Summary(**lat[path]["raw_ceiling"])
        for direction in ("both", "stop", "start"):
            one = Summary(**lat[path][direction])
            cells = [f"KV put → same path (n={ceiling.n}): {ceiling.ms()}", target]
            cells.append(_met(one.p99 <= TARGETS["p99_s"]))
            if direction != "both":
                cells = ["″", "", ""]
            rows.append(
                f"| unit change → {label}, {direction} (n={one.n}), ms median / p90 / p99 / max "
                f"| {one.ms()} | {' | '.join(cells)} |"
            )
    issued = Summary(**result["issued_to_change_s"])
    notes = [
        f"{m['date']}, {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, Python "
        f"{m['python']}, {m['nats_server']}, drover {m['drover']}.",
        f"{s['units']} units in {s['applications']} applications, policy {s['policy']}; "
        f"all reported running {result['startup_all_running_s']:.1f} s after the agent was "
        f"launched; agent RSS after the latency phase: "
        f"{result['agent_rss_after_latency_mb']:.1f} MB.",
        f"Not counted in the latency: systemctl via nsenter, issue → systemd's state change, "
        f"ms median / p90 / p99 / max: {issued.ms()}.",
        f"Agent p99 / raw p99 (watch): {watch.p99 / watch_ceiling.p99:.1f}×.",
        f"First unit inventory holding all {s['units']} units (with their unit files' "
        f"`X-Drover-*` keys) in KV {result['inventory']['first_full_s']:.1f} s after the agent "
        f"was launched; inventories written during the idle window: "
        f"{result['inventory']['writes_idle']}, during the latency phase: "
        f"{result['inventory']['writes_latency_phase']} (a state change is no inventory change).",
    ]
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


# -- entry point ------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_systemd", description=__doc__)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200, help="latency samples (even)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "drover-bench" / "agent_systemd.json",
    )
    args = parser.parse_args(argv)
    return Options(units=args.units, samples=args.samples, idle=args.idle, out=args.out)


async def within_bound(opts: Options) -> dict[str, Any]:
    """The whole run within a bound; SIGTERM cancels it, so everything is still cleaned up."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.timeout(opts.idle + 240):
        return await run(opts)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    try:
        result = asyncio.run(within_bound(opts))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted; everything the bench started has been stopped", file=sys.stderr)
        return 130
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nraw samples: {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
