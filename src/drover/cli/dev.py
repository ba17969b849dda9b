"""`drover dev`: nats-server, server and a local agent in one process, for trying drover."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from drover.agent.app import Agent, AgentSettings
from drover.bus.connection import BusSettings
from drover.bus.embedded import EmbeddedNats
from drover.model.names import host_id_from_hostname
from drover.ops.loops import unless_stopped
from drover.server.app import Server, ServerSettings

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"


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
) -> None:
    nats = EmbeddedNats(data_dir / "nats", port=nats_port)
    await nats.start()
    log.info("nats-server (pid %s) on %s", nats.pid(), nats.url)
    server = Server(
        ServerSettings(
            config_path=config_path,
            config_ref=config_ref,
            database_url=f"sqlite+aiosqlite:///{data_dir / 'drover.db'}",
            listen_host=listen_host,
            listen_port=listen_port,
            config_poll_interval=2.0,
            bus=BusSettings(url=nats.url, name="drover-server"),
        )
    )
    host = host_id or host_id_from_hostname()
    agent = Agent(
        AgentSettings(
            host_id=host,
            data_dir=data_dir / "agent",
            bus=BusSettings(url=nats.url, name=f"drover-agent-{host}"),
            heartbeat_interval=5.0,
            # Self-contained: the example's processes are children of this process and end
            # with it, never units left behind in the machine's own systemd.
            systemd="off",
        )
    )
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.run(stop))
            # The server creates the streams and buckets; an agent started first would only
            # retry until they exist.
            server_up, _ = await unless_stopped(server.ready.wait(), stop)
            if server_up:
                tg.create_task(agent.run(stop))
                tg.create_task(_announce(server, agent, stop))
    finally:
        await nats.stop()
        log.info("drover dev stopped")


async def _announce(server: Server, agent: Agent, stop: asyncio.Event) -> None:
    """Say where to look, once everything is up."""
    agent_up, _ = await unless_stopped(agent.ready.wait(), stop)
    if not agent_up:
        return
    assert server.http is not None
    url = f"http://{server.settings.listen_host}:{server.http.port}"
    server_opt = "" if url == DEFAULT_URL else f" --server {url}"
    log.info("drover is up: API %s, docs %s/docs", url, url)
    log.info("try: %s status%s   (Ctrl-C stops everything)", _this_command(), server_opt)


def _this_command() -> str:
    """How the user can run this same `drover` again: relative to here if it lies below."""
    here = Path.cwd()
    exe = Path(sys.argv[0]).resolve()
    return str(exe.relative_to(here)) if exe.is_relative_to(here) else exe.name
