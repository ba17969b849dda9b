"""The drover every fleet benchmark runs against: nats-server (TLS, operator mode, as `drover
dev` runs it) and `drover server` in a process of its own, with an admin the benchmark signs in
as; and what the benchmarks share to start and watch them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.procs import Child, spawn
from drover import __version__
from drover.bus.embedded import BusSecurity, EmbeddedNats, free_port, nats_server_binary

HEALTHY_BOUND = 60.0  # server launched → GET /healthz 200


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without what would change how drover runs (settings, sd_notify)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DROVER_", "NOTIFY_", "WATCHDOG_")) and k != "DBUS_SYSTEM_BUS_ADDRESS"
    }
    return {**env, **(extra or {})}


def drover_binary() -> str:
    beside = Path(sys.executable).parent / "drover"
    found = str(beside) if beside.exists() else shutil.which("drover")
    if found is None:
        raise FileNotFoundError("drover is not installed (make install)")
    return found


BENCH_USER = "bench"  # the admin the benchmarks call the API as


def database(tmp: Path) -> list[str]:
    return ["--database", f"sqlite+aiosqlite:///{tmp}/drover.db"]


async def start_server(
    tmp: Path, bus: EmbeddedNats, port: int, password: str, poll: float = 2.0
) -> Child:
    """`drover server` on `bus`, with an admin `bench` whose password is `password`."""
    add_admin = [drover_binary(), "user", "add", BENCH_USER, "--role", "admin", "--password-stdin"]
    await asyncio.to_thread(
        subprocess.run,
        [*add_admin, *database(tmp)],
        input=password + "\n",
        text=True,
        capture_output=True,
        check=True,
        timeout=60,
        env=clean_env(),
    )
    return await spawn_server(tmp, bus, port, poll)


async def spawn_server(tmp: Path, bus: EmbeddedNats, port: int, poll: float = 2.0) -> Child:
    """`drover server` on `bus`, on the database and config under `tmp`, as they are."""
    assert bus.security is not None
    argv = [drover_binary(), "server", "--nats", bus.url, "--config", str(tmp / "config")]
    argv += ["--bus-authority", str(bus.security.authority.directory)]
    argv += ["--nats-ca", str(bus.security.certificate.ca_file)]
    argv += ["--listen", f"127.0.0.1:{port}", *database(tmp)]
    argv += ["--poll", str(poll), "--log-level", "WARNING"]
    return await spawn("server", argv, tmp / "server.log", clean_env())


async def signed_in_http(base: str, password: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    response = await http.post("/api/v1/login", json={"name": BENCH_USER, "password": password})
    response.raise_for_status()
    return http


async def wait_until(
    what: str, check: Any, bound: float, watched: list[Child], interval: float = 0.2
) -> Any:
    """Poll `check()` (async) until it returns something truthy; fail if a watched child dies."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    last: Any = None
    while loop.time() < end:
        for child in watched:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited while waiting for {what}: {child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            last = await check()
            if last:
                return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {bound:.0f} s (last: {last!r})")


async def healthy(base: str) -> bool:
    async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
        return (await probe.get("/healthz")).status_code == 200


@dataclass
class Drover:
    """A running nats-server and `drover server`, and an HTTP client signed in as the admin."""

    tmp: Path
    bus: EmbeddedNats
    server: Child
    port: int
    password: str
    http: httpx.AsyncClient

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_drover(stack: contextlib.AsyncExitStack, tmp: Path, poll: float = 2.0) -> Drover:
    """nats-server and `drover server` on the config folder `tmp/config`, healthy and signed
    in; `stack` stops them."""
    bus = EmbeddedNats(tmp / "nats", security=BusSecurity.local(tmp / "bus"))
    await bus.start()
    stack.push_async_callback(bus.stop)
    port = free_port()
    password = secrets.token_urlsafe(18)
    server = await start_server(tmp, bus, port, password, poll=poll)
    stack.push_async_callback(server.stop)
    base = f"http://127.0.0.1:{port}"
    await wait_until("server healthy", lambda: healthy(base), HEALTHY_BOUND, [server])
    http = await signed_in_http(base, password)
    stack.push_async_callback(http.aclose)
    return Drover(tmp, bus, server, port, password, http)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": version,
        "drover": __version__,
    }
