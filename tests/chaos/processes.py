"""drover's server and agents as OS processes, started as an operator starts them (`drover
server`, `drover agent`), so that a test can kill one with SIGKILL — as the OOM killer or a
power cut would — or stop it with SIGTERM, and start it again on the same data."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from drover.agent.enrollment import enroll
from drover.bus.embedded import EmbeddedNats, free_port
from drover.model.access import Grant, Role
from drover.ops.clock import SystemClock
from drover.server.auth.accounts import Accounts
from drover.server.auth.passwords import Passwords
from drover.store.audit import ORIGIN, Origin
from drover.store.database import open_database
from tests.e2e.test_discovery import DROVER


def _die_with_the_test() -> None:  # pragma: no cover - runs in the child before exec
    # A test process that dies (a timeout, Ctrl-C) takes its servers and agents with it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


@dataclass
class Process:
    """One command, restartable: each life's output is appended to `log`."""

    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    lives: int = 0
    reported_start: str | None = None  # an agent's: the start its last life reported

    async def start(self) -> None:
        assert not self.alive, f"{self.argv[1]} is running already"
        with self.log.open("ab") as out:
            out.write(f"--- life {self.lives + 1}\n".encode())
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **self.env},
                preexec_fn=_die_with_the_test,
            )
        self.lives += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as systemd stops a unit; its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        if self.alive:
            try:
                await self.terminate(timeout=20)
            except TimeoutError:
                await self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ProcessFleet:
    """A `drover server` process and `drover agent` processes on one nats-server, with an
    SQLite system of record and an admin API client."""

    def __init__(self, nats: EmbeddedNats, tmp: Path, config_dir: Path) -> None:
        assert nats.security is not None, "drover runs on a secured bus only"
        self.nats = nats
        self.tmp = tmp
        self.database_url = f"sqlite+aiosqlite:///{tmp / 'drover.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        ca = str(nats.security.certificate.ca_file)
        self.server = Process(
            [
                *(DROVER, "server", "--nats", nats.url, "--config", str(config_dir)),
                *("--listen", f"127.0.0.1:{self.port}", "--database", self.database_url),
                *("--poll", "0.2", "--bus-authority", str(nats.security.authority.directory)),
                *("--nats-ca", ca, "--agent-nats-url", nats.url),
            ],
            tmp / "server.log",
        )
        self.agents: dict[str, Process] = {}
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    async def start_server(self) -> None:
        if not self.http.headers.get("Authorization"):
            token = await _bootstrap_admin(self.database_url)
            self.http.headers["Authorization"] = f"Bearer {token}"
        await self.server.start()
        await self.until_serving()

    async def until_serving(self, timeout: float = 30.0) -> None:
        """Until the server answers its health check (it is connected and ready)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            assert self.server.alive, "the server exited:\n" + self.server.output()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if (await self.http.get("/healthz")).status_code == 200:
                    return
            if loop.time() > end:
                raise TimeoutError("the server did not become ready:\n" + self.server.output())
            await asyncio.sleep(0.1)

    async def start_agent(self, host: str, systemd: str = "") -> Process:
        """Enroll `host` (a one-time token over the API, as a new host does) and run its
        agent. Heartbeats every second, so the server soon sees it come and go. `systemd`:
        its settings for a systemd to manage (TOML lines); without, none."""
        data_dir = self.tmp / "agents" / host
        made = await self.http.post("/api/v1/enrollment-tokens", json={"host": host})
        made.raise_for_status()
        await enroll(self.base_url, host, data_dir, made.json()["token"])
        settings = self.tmp / "agents" / f"{host}.toml"
        settings.write_text(
            "heartbeat_interval = 1.0\ndrain_timeout = 5.0\n" + (systemd or 'systemd = "off"\n')
        )
        agent = Process(
            [DROVER, "agent", "--host-id", host, "--data-dir", str(data_dir)],
            self.tmp / f"agent-{host}.log",
            env={"DROVER_AGENT_CONFIG": str(settings)},
        )
        self.agents[host] = agent
        await agent.start()
        await self.until_online(host)
        return agent

    async def until_online(self, host: str, timeout: float = 30.0) -> None:
        """Until `host`'s agent, in the life it is in now, has reported itself."""
        agent = self.agents[host]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            with contextlib.suppress(httpx.TransportError):
                found = await self.http.get(f"/api/v1/hosts/{host}")
                started = found.json().get("started_at") if found.status_code == 200 else None
                if (
                    started is not None
                    and started != agent.reported_start
                    and found.json()["online"]
                ):
                    agent.reported_start = started
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{host} did not come online:\n" + agent.output()[-3000:])

    async def close(self) -> None:
        for agent in self.agents.values():
            await agent.stop()
        await self.server.stop()
        await self.http.aclose()


async def _bootstrap_admin(database_url: str) -> str:
    """An admin and a token of theirs, written straight into the system of record as
    `drover user add --database` does for a new install; the token's secret."""
    engine = await open_database(database_url)
    origin = ORIGIN.set(Origin("local", uuid.uuid4().hex))
    try:
        accounts = Accounts(engine, SystemClock(), Passwords())
        await accounts.add_user("admin", by="test", grants=[Grant(Role.ADMIN)], groups=[])
        issued = await accounts.create_token(
            "admin", name="chaos", expires_in=timedelta(days=1), by="test"
        )
        return issued.secret
    finally:
        ORIGIN.reset(origin)
        await engine.dispose()


def json_of(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()
