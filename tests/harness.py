"""A whole drover — server and agents, in this process — on a real nats-server, for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from drover.agent.app import Agent, AgentSettings
from drover.bus.connection import BusSettings
from drover.bus.embedded import EmbeddedNats
from drover.cli.dev import enroll_local_agent
from drover.model.access import Grant, Role
from drover.ops.clock import Clock, SystemClock
from drover.server.app import Server, ServerSettings
from drover.server.auth.settings import AuthSettings
from tests.busauth import enroll_directly


class ShiftedClock(SystemClock):
    """The system's time plus `offset`: moved forward, it lets a short wait stand for a long
    one wherever drover reads the time (deadlines, heartbeats, host lifecycle, schedules).
    nats-server's own timers (ack waits, pings, the duplicate window) run on real time."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset


@dataclass
class Running:
    """A component running in a background task until its stop event is set."""

    stop: asyncio.Event
    task: asyncio.Task[None]
    server: Server | None = None  # a peer server (start_peer), to reach its API

    async def halt(self, timeout: float = 20.0) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


@dataclass
class Fleet:
    nats: EmbeddedNats
    tmp: Path
    config_dir: Path
    server: Server | None = None
    agents: dict[str, Agent] = field(default_factory=dict)
    running: list[Running] = field(default_factory=list)
    http: httpx.AsyncClient | None = None
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    admin_token: str = ""  # the secret `http` sends; DROVER_TOKEN for a CLI run as admin
    # A cluster's client URLs (`nats` is one of its nodes): the servers connect to all of them,
    # and agents to those their enrollment gave them (the servers' own). Empty: `nats` alone.
    bus_urls: tuple[str, ...] = ()
    bus_replicas: int = 1  # of every stream and bucket, as the servers make them

    async def start_server(
        self,
        poll: float = 0.2,
        answer_grace: timedelta = timedelta(minutes=5),
        database_url: str | None = None,
        auth: AuthSettings | None = None,
        port: int = 0,
        drain_grace: float = 0.0,
        clock: Clock | None = None,
    ) -> Server:
        """The server; `drain_grace`: how long a stop waits with /healthz failing (none here,
        as with no balancer in front)."""
        settings = self._server_settings(
            poll, answer_grace, database_url, auth, port, "test-server"
        )
        self.server = Server(replace(settings, drain_grace=drain_grace), clock)
        self.running.append(_launch(self.server.run))
        await asyncio.wait_for(self.server.ready.wait(), 20)
        assert self.server.http is not None
        if self.http is not None:  # a restart: the old client's server is gone
            await self.http.aclose()
        # `http` acts as an admin, as the person who set drover up would.
        self.admin_token = await self.token_for("admin", Grant(Role.ADMIN))
        self.http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        return self.server

    def _server_settings(
        self,
        poll: float,
        answer_grace: timedelta,
        database_url: str | None,
        auth: AuthSettings | None,
        port: int,
        name: str,
    ) -> ServerSettings:
        return ServerSettings(
            config_path=self.config_dir,
            database_url=database_url or f"sqlite+aiosqlite:///{self.tmp / 'drover.db'}",
            listen_port=port,
            config_poll_interval=poll,
            answer_grace=answer_grace,
            bus=BusSettings(url=self.bus_url, name=name, tls_ca=self._ca),
            bus_replicas=self.bus_replicas,
            auth=auth or AuthSettings(),
            bus_authority=self._authority_dir,
            alert_every=0.5,
            canary_every=0,  # tests that count actions must not meet a canary's; see test_canary
            schedule_tick=0.3,
        )

    async def start_peer(
        self,
        database_url: str,
        name: str = "test-server-2",
        port: int = 0,
        drain_grace: float = 0.0,
    ) -> Running:
        """Another server process beside `server`, on the same bus and database (PostgreSQL:
        several servers share one). Its API takes the same tokens."""
        settings = self._server_settings(0.2, timedelta(minutes=5), database_url, None, port, name)
        peer = Server(replace(settings, drain_grace=drain_grace))
        running = _launch(peer.run)
        running.server = peer
        self.running.append(running)
        await asyncio.wait_for(peer.ready.wait(), 20)
        return running

    async def start_agent(
        self,
        host: str,
        systemd_bus: str | None = None,
        systemd_root: Path | None = None,
        *,
        enroll: bool = True,
        metrics_listen: tuple[str, int] | None = None,
        nats_url: str | None = None,
    ) -> Agent:
        """An agent; with `systemd_bus` it manages units of that systemd, else none at all.
        `systemd_root`: where that systemd's files are seen from here (its namespace's root).
        `enroll`: enroll it first (or renew what it has); else it starts with what it has.
        `nats_url`: where it connects (an outpost's), instead of where its enrollment says."""
        data_dir = self.tmp / "agents" / host
        if not enroll:
            pass
        elif self.server is not None:  # as a host enrolls: a one-time token, over the API
            await enroll_local_agent(self.server, host, data_dir)
        else:
            await enroll_directly(self.nats, host, data_dir)
        agent = Agent(
            AgentSettings(
                host_id=host,
                data_dir=data_dir,
                bus=BusSettings(name=f"test-agent-{host}"),
                # On a cluster, the URLs its enrollment gave it, as a real agent has them.
                nats_url=nats_url or (None if self.bus_urls else self.nats.url),
                heartbeat_interval=1.0,
                drain_timeout=5.0,
                systemd="on" if systemd_bus else "off",
                systemd_bus_address=systemd_bus,
                systemd_root=systemd_root or Path("/"),
                metrics_listen=metrics_listen,
            )
        )
        self.agents[host] = agent
        self.running.append(_launch(agent.run))
        await asyncio.wait_for(agent.ready.wait(), 20)
        return agent

    async def client_as(
        self, name: str, *grants: Grant, groups: Iterable[str] = ()
    ) -> httpx.AsyncClient:
        """An API client authenticated by a fresh token as user `name` — made if new, else
        given exactly these `grants` and `groups` — closed with the fleet. E.g.
        `await fleet.client_as("olga", Grant(Role.OPERATOR, ("shop",)), groups=["ops"])`."""
        secret = await self.token_for(name, *grants, groups=groups)
        return self.client_with_token(secret)

    async def token_for(self, name: str, *grants: Grant, groups: Iterable[str] = ()) -> str:
        """The secret of a new API token of user `name` (made or changed as by client_as)."""
        assert self.server is not None and self.server.access is not None
        accounts = self.server.access.accounts
        if await accounts.users.get(name) is None:
            await accounts.add_user(name, by="test", grants=grants, groups=groups)
        else:
            await accounts.change_user(name, by="test", grants=grants, groups=groups)
        issued = await accounts.create_token(
            name, name="test", expires_in=timedelta(days=1), by="test"
        )
        return issued.secret

    def client_with_token(self, secret: str | None) -> httpx.AsyncClient:
        """An API client sending `secret` as its bearer token (none: no credentials)."""
        assert self.server is not None and self.server.http is not None
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        client = httpx.AsyncClient(base_url=self.base_url, headers=headers)
        self.clients.append(client)
        return client

    @property
    def bus_url(self) -> str:
        """What the servers are given: one URL, or a cluster's, separated by commas."""
        return ",".join(self.bus_urls) if self.bus_urls else self.nats.url

    @property
    def _ca(self) -> Path | None:
        return self.nats.security.certificate.ca_file if self.nats.security else None

    @property
    def _authority_dir(self) -> Path:
        assert self.nats.security is not None, "drover runs on a secured bus only"
        return self.nats.security.authority.directory

    @property
    def base_url(self) -> str:
        assert self.server is not None and self.server.http is not None
        return f"http://127.0.0.1:{self.server.http.port}"

    async def get(self, path: str) -> Any:
        assert self.http is not None
        response = await self.http.get(path)
        response.raise_for_status()
        return response.json()

    async def close(self) -> None:
        for component in reversed(self.running):
            with contextlib.suppress(TimeoutError):
                await component.halt()
        if self.http is not None:
            await self.http.aclose()
        for client in self.clients:
            await client.aclose()


def _launch(run: Any) -> Running:
    stop = asyncio.Event()
    return Running(stop, asyncio.create_task(run(stop)))


@contextlib.asynccontextmanager
async def fleet_of(
    nats: EmbeddedNats,
    tmp: Path,
    config: dict[str, str],
    *,
    bus_urls: Iterable[str] = (),
    bus_replicas: int = 1,
) -> AsyncIterator[Fleet]:
    """A fleet on `nats`; on a cluster, give every node's URL in `bus_urls` (`nats` being one
    of them, for its security) and the replicas its streams are to have."""
    config_dir = tmp / "config"
    write_tree(config_dir, config)
    fleet = Fleet(nats, tmp, config_dir, bus_urls=tuple(bus_urls), bus_replicas=bus_replicas)
    try:
        yield fleet
    finally:
        await fleet.close()


def write_tree(root: Path, files: dict[str, str]) -> None:
    """Each file appears whole: written beside and renamed into place, as a checkout does.
    Written in place, the server's next look could find it half written or empty, which is a
    valid config of its own (an empty approvals.yaml holds no policies)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.writing")
        staged.write_text(text)
        staged.replace(path)
