"""Simulated hosts in one process: the real agent, each with its own enrollment, NATS
connection and consumers, running on simulated providers (sim/provider.py).

One process holds many: they share its event loop, as agents on one machine would share its
cores. Each stands in for every provider a config may name, so whatever the server places on
a simulated host runs there.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from drover.agent.app import Agent, AgentSettings, OpenProviders
from drover.agent.providers.base import Provider
from drover.ops.clock import SystemClock
from drover.sim.provider import SimulatedProvider

log = logging.getLogger(__name__)

PROVIDERS = ("process", "script", "systemd")


def host_names(prefix: str, count: int) -> list[str]:
    """`prefix` and a number, as wide as the largest: sim-0000 … sim-9999."""
    width = len(str(max(count - 1, 0)))
    return [f"{prefix}{index:0{width}d}" for index in range(count)]


@dataclass(frozen=True)
class HostsSettings:
    data_dir: Path  # one folder per host below it, holding that host's enrollment
    hosts: tuple[str, ...]
    heartbeat_interval: float = 10.0
    flap_rate: float = 0.0  # services made to fail per second, over these hosts
    drain_timeout: float = 5.0
    nats_url: str | None = None  # instead of the URLs each host's enrollment gave it


class SimulatedHosts:
    def __init__(self, settings: HostsSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        clock = SystemClock()
        self.providers: dict[str, list[SimulatedProvider]] = {}
        self.agents: list[Agent] = []
        for host in settings.hosts:
            made = [SimulatedProvider(name, host, clock) for name in PROVIDERS]
            self.providers[host] = made
            self.agents.append(
                Agent(
                    AgentSettings(
                        host_id=host,
                        data_dir=settings.data_dir / host,
                        heartbeat_interval=settings.heartbeat_interval,
                        drain_timeout=settings.drain_timeout,
                        systemd="off",
                        nats_url=settings.nats_url,
                    ),
                    clock,
                    open_providers=_given(made),
                )
            )
        self.flaps = 0

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Every host until `stop`, then each drains; `ready` is set once all are running."""
        async with asyncio.TaskGroup() as tg:
            for agent in self.agents:
                tg.create_task(agent.run(stop), name=f"sim.{agent.settings.host_id}")
            helpers = [tg.create_task(self._all_ready(ready), name="sim.ready")]
            if self.settings.flap_rate > 0:
                helpers.append(tg.create_task(self._flap(), name="sim.flap"))
            await stop.wait()
            for helper in helpers:  # a host that never connected must not hold up the end
                helper.cancel()

    async def _all_ready(self, ready: asyncio.Event | None) -> None:
        for agent in self.agents:
            await agent.ready.wait()
        if ready is not None:
            ready.set()

    async def _flap(self) -> None:
        """Fail a running service somewhere, `flap_rate` times a second on average."""
        hosts = list(self.providers)
        while True:
            await asyncio.sleep(self._rng.expovariate(self.settings.flap_rate))
            provider = self._rng.choice(self.providers[self._rng.choice(hosts)])
            running = provider.running()
            if running and provider.fail(*self._rng.choice(running)):
                self.flaps += 1


def _given(providers: list[SimulatedProvider]) -> OpenProviders:
    def open_providers(_tg: asyncio.TaskGroup) -> list[Provider]:
        return list(providers)

    return open_providers
