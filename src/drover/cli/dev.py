"""`drover dev`: nats-server, server and a local agent in one process, for trying drover.

Secured as production is: nats-server trusts drover's bus authority and speaks TLS with a
certificate of a local CA (both made on first start in <data dir>/bus), and the local agent
enrolls with a one-time token, over the API, as any host would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from drover.agent.app import Agent, AgentSettings
from drover.agent.enrollment import Enrollment, EnrollmentRefused, NotEnrolled, enroll, renew
from drover.bus.connection import BusSettings
from drover.bus.embedded import BusSecurity, EmbeddedNats
from drover.cli.credentials import store_token
from drover.model.access import Grant, Role
from drover.model.names import host_id_from_hostname
from drover.ops.loops import unless_stopped
from drover.server.app import Server, ServerSettings
from drover.server.auth.credentials import new_password, sha256

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"
DEV_ADMIN = "admin"


async def run_dev(
    stop: asyncio.Event,
    *,
    listen_host: str,
    listen_port: int,
    data_dir: Path,
    config_path: Path,
    config_ref: str | None,
    host_id: str | None,
    nats_port: int = 0,
    leaf_port: int | None = None,
) -> None:
    await asyncio.to_thread(_private_dir, data_dir)
    security = await asyncio.to_thread(BusSecurity.local, data_dir / "bus")
    nats = EmbeddedNats(data_dir / "nats", port=nats_port, security=security, leaf_port=leaf_port)
    await nats.start()
    log.info("nats-server (pid %s) on %s", nats.pid(), nats.url)
    if leaf_port is not None:
        log.info("outposts' leaf node links taken on %s:%s", nats.host, nats.leaf_port)
    server = Server(
        ServerSettings(
            config_path=config_path,
            config_ref=config_ref,
            database_url=f"sqlite+aiosqlite:///{data_dir / 'drover.db'}",
            listen_host=listen_host,
            listen_port=listen_port,
            config_poll_interval=2.0,
            bus=BusSettings(
                url=nats.url, name="drover-server", tls_ca=security.certificate.ca_file
            ),
            bus_authority=security.authority.directory,
            drain_grace=0,  # no balancer in front: Ctrl-C stops at once
        )
    )
    host = host_id or host_id_from_hostname()
    agent_settings = AgentSettings(
        host_id=host,
        data_dir=data_dir / "agent",
        bus=BusSettings(name=f"drover-agent-{host}"),
        nats_url=nats.url,  # its port is new at every start
        heartbeat_interval=5.0,
        # Self-contained: the example's processes are children of this process and end
        # with it, never units left behind in the machine's own systemd.
        systemd="off",
    )
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.run(stop))
            # The server creates the streams and buckets; an agent started first would only
            # retry until they exist.
            server_up, _ = await unless_stopped(server.ready.wait(), stop)
            if server_up:
                signed_in = await bootstrap_admin(server, data_dir)
                await enroll_local_agent(server, host, agent_settings.data_dir)
                agent = Agent(agent_settings)
                tg.create_task(agent.run(stop))
                tg.create_task(_announce(server, agent, stop, signed_in))
    finally:
        await nats.stop()
        log.info("drover dev stopped")


@dataclass(frozen=True)
class DevLogin:
    token_file: Path
    password_file: Path


def _private_dir(path: Path) -> None:
    """It holds the database (password and token hashes, the audit) and the admin's secrets."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


async def bootstrap_admin(server: Server, data_dir: Path) -> DevLogin:
    """An `admin` on the first start, with a random password in <data_dir>/admin-password;
    a valid token of theirs in <data_dir>/token (a new one if it is missing, expired or
    revoked). Both files are readable by their owner only."""
    assert server.access is not None
    accounts = server.access.accounts
    password_file, token_file = data_dir / "admin-password", data_dir / "token"
    if await accounts.users.get(DEV_ADMIN) is None:
        password = new_password()
        await accounts.add_user(
            DEV_ADMIN, by="drover dev", grants=[Grant(Role.ADMIN)], password=password
        )
        store_token(password_file, password)
        log.info("user %s made; its password is in %s", DEV_ADMIN, password_file)
    if not await _valid_token(server, token_file):
        issued = await accounts.create_token(
            DEV_ADMIN, name="drover dev", expires_in=timedelta(days=30), by="drover dev"
        )
        store_token(token_file, issued.secret)
    return DevLogin(token_file, password_file)


async def enroll_local_agent(server: Server, host: str, data_dir: Path) -> None:
    """Enroll the agent in `data_dir` with a one-time token, over the API as any host would;
    unless it is enrolled with this server already (its credentials renew)."""
    assert server.enrollment is not None and server.http is not None
    url = f"http://{server.settings.listen_host}:{server.http.port}"
    with contextlib.suppress(NotEnrolled, EnrollmentRefused):
        await renew(Enrollment.load(data_dir))
        return
    _, token = await server.enrollment.create_token("drover dev", host=host)
    await enroll(url, host, data_dir, token)
    log.info("the local agent %s enrolled with a one-time token", host)


async def _valid_token(server: Server, path: Path) -> bool:
    assert server.access is not None
    try:
        secret = (await asyncio.to_thread(path.read_text)).strip()
    except OSError:
        return False
    found = await server.access.accounts.tokens.by_secret(sha256(secret))
    return found is not None and found[0].valid(server.clock.now()) and not found[1].disabled


async def _announce(server: Server, agent: Agent, stop: asyncio.Event, signed_in: DevLogin) -> None:
    """Say where to look, once everything is up."""
    agent_up, _ = await unless_stopped(agent.ready.wait(), stop)
    if not agent_up:
        return
    assert server.http is not None
    url = f"http://{server.settings.listen_host}:{server.http.port}"
    server_opt = "" if url == DEFAULT_URL else f" --server {url}"
    log.info("drover is up: GUI %s/, API docs %s/docs", url, url)
    log.info(
        "the CLI signs in as %s with: export DROVER_TOKEN_FILE=%s", DEV_ADMIN, signed_in.token_file
    )
    log.info("a browser signs in as %s with the password in %s", DEV_ADMIN, signed_in.password_file)
    log.info("try: %s status%s   (Ctrl-C stops everything)", _this_command(), server_opt)


def _this_command() -> str:
    """How the user can run this same `drover` again: relative to here if it lies below."""
    here = Path.cwd()
    exe = Path(sys.argv[0]).resolve()
    return str(exe.relative_to(here)) if exe.is_relative_to(here) else exe.name
