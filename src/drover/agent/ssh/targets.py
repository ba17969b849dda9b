"""The SSH targets this agent manages, each a host of the fleet of its own.

The server puts into this host's desired state the targets whose `ssh.via` names it. For each,
this agent runs an Agent (agent/app.py) in its own process, with:

- its own enrollment and bus identity, in `<data dir>/targets/<host>/`: the first time, this
  agent asks the server to enroll the target with a new key, and an admin approves it as any
  host (`drover hosts approve <host> <key>`; the key is logged). So a target acts on the bus
  only as itself, under the permissions of any host, and can be revoked alone;
- its own ledger, spool and reports: a record of kind `ssh-target`, saying `via` this host;
- providers and a command runner that work over SSH (providers.py, commands.py), through one
  pool of connections for all targets (connections.py), `ssh_max_connections` at most.

A target no longer desired, or whose settings changed, has its agent drained and stopped (and
started again with the new settings). What is on the target is left as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from drover.agent.enrollment import Enrollment, EnrollmentRefused, NotEnrolled, enroll
from drover.agent.providers.base import Provider
from drover.agent.providers.script import ScriptProvider
from drover.agent.ssh.commands import SshCommandRunner
from drover.agent.ssh.connections import SshPool
from drover.agent.ssh.providers import SshSystemdProvider, script_runner
from drover.bus.connection import Bus, BusSettings
from drover.bus.messages import SshTarget
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.ops.loops import Backoff

if TYPE_CHECKING:
    from drover.agent.app import Agent, AgentSettings

log = logging.getLogger(__name__)

ENROLL_WAIT = timedelta(hours=1)  # one request's wait for an admin; then it is asked again


@dataclass
class _Running:
    target: SshTarget
    stop: asyncio.Event
    task: asyncio.Task[None]


class Targets:
    def __init__(self, proxy: AgentSettings, enrollment: Enrollment, clock: Clock) -> None:
        self._proxy = proxy
        self._enrollment = enrollment
        self._clock = clock
        self.pool = SshPool(proxy.ssh_max_connections)
        self._wanted: dict[str, SshTarget] = {}
        self._running: dict[str, _Running] = {}
        self._changed = asyncio.Event()
        self.agents: dict[str, Agent] = {}  # the running agent of each target

    @property
    def directory(self) -> Path:
        return self._proxy.data_dir / "targets"

    def desired(self, targets: list[SshTarget]) -> None:
        """The targets the desired state names now."""
        wanted = {target.host: target for target in targets}
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def run(self) -> None:
        """A loop: an agent for each desired target, and none for the others."""
        # Run again after a failure (forever()): the agents of the last run ended with it.
        self._running = {h: r for h, r in self._running.items() if not r.task.done()}
        self._changed.set()
        async with asyncio.TaskGroup() as tg:
            tidying: asyncio.Task[None] | None = None  # only with targets: most agents have none
            while True:
                await self._changed.wait()
                self._changed.clear()
                if self._wanted and tidying is None:
                    tidying = tg.create_task(self.pool.close_idle(), name="ssh.close_idle")
                for host, running in list(self._running.items()):
                    if self._wanted.get(host) != running.target:
                        await self._stop(host)
                for host, target in self._wanted.items():
                    if host not in self._running:
                        stop = asyncio.Event()
                        task = tg.create_task(self._serve(target, stop), name=f"ssh.{host}")
                        self._running[host] = _Running(target, stop, task)
                        log.info("ssh target %s: managed from here", host)

    async def close(self) -> None:
        """Drain every target's agent (each within the drain timeout), close the connections."""
        await asyncio.gather(*(self._stop(host) for host in list(self._running)))
        await self.pool.close()

    async def _stop(self, host: str) -> None:
        running = self._running.pop(host)
        running.stop.set()
        done, _ = await asyncio.wait({running.task}, timeout=self._proxy.drain_timeout + 5)
        if not done:
            running.task.cancel()
            await asyncio.wait({running.task})
        self.agents.pop(host, None)

    async def _serve(self, target: SshTarget, stop: asyncio.Event) -> None:
        """Enroll the target if need be, then run its agent until `stop`; again on failure."""
        data_dir = self.directory / target.host
        backoff = Backoff(1.0, 60.0)
        while not stop.is_set():
            try:
                await self._enrolled(target.host, data_dir)
                agent = self._agent(target, data_dir)
                self.agents[target.host] = agent
                await agent.run(stop)
                return
            except asyncio.CancelledError:
                raise
            except (EnrollmentRefused, NotEnrolled, OSError) as err:
                log.warning("ssh target %s: %s", target.host, err)
            except Exception:
                log.exception("ssh target %s: its agent failed", target.host)
            with contextlib.suppress(TimeoutError):
                await bounded(stop.wait(), backoff.next_delay())

    async def _enrolled(self, host: str, data_dir: Path) -> None:
        with contextlib.suppress(NotEnrolled):
            if Enrollment.load(data_dir).host == host:
                return

        def pending(public_key: str) -> None:
            log.warning(
                "ssh target %s waits for an admin: drover hosts approve %s %s",
                host,
                host,
                public_key,
            )

        await enroll(
            self._enrollment.server_url,
            host,
            data_dir,
            wait=ENROLL_WAIT,
            verify=self._enrollment.server_verify,
            on_pending=pending,
        )
        log.info("ssh target %s: enrolled", host)

    def _agent(self, target: SshTarget, data_dir: Path) -> Agent:
        from drover.agent.app import Agent, AgentSettings  # it runs us: imported once it has

        pool, clock = self.pool, self._clock

        def providers(tg: asyncio.TaskGroup) -> list[Provider]:
            return [
                ScriptProvider(target.host, clock, tg, run=script_runner(pool, target)),
                SshSystemdProvider(target.host, target, pool, clock, tg),
            ]

        def commands(bus: Bus) -> SshCommandRunner:
            return SshCommandRunner(bus, target, pool)

        settings = AgentSettings(
            host_id=target.host,
            data_dir=data_dir,
            bus=BusSettings(name=f"drover-ssh-target-{target.host}"),
            nats_url=self._proxy.nats_url,
            heartbeat_interval=self._proxy.heartbeat_interval,
            drain_timeout=self._proxy.drain_timeout,
            systemd="off",
            kind="ssh-target",
            via=self._proxy.host_id,
            hostname=target.address,
        )
        return Agent(settings, clock, open_providers=providers, open_commands=commands)
