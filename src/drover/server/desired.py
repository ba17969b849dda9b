"""Publishes each host's desired state (what it should run, from the active config).

Written only when it changes, for every host the config names or the fleet has seen; everything
is written again after a reconnect, since the bus may have lost its data (invariant 2).
"""

from __future__ import annotations

import asyncio
import contextlib

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.messages import DesiredService, DesiredState, encode
from drover.config.placement import applications_on
from drover.config.schema import FleetConfig
from drover.server.fleet import FleetView


def desired_for_host(config: FleetConfig, host: str) -> DesiredState:
    services = [
        DesiredService(
            application=app_name,
            service=svc_name,
            provider=svc.provider,
            target=svc.target,
            command=list(svc.command),
            env=dict(svc.env),
            cwd=svc.cwd,
            unit=svc.unit,
            status_command=list(svc.status),
            start_command=list(svc.start),
            stop_command=list(svc.stop),
            timeout=svc.timeout,
            check_interval=svc.check_interval,
            stop_timeout=svc.stop_timeout,
            policy=svc.policy,
            max_attempts=svc.max_attempts,
        )
        for app_name, app in applications_on(config, host).items()
        for svc_name, svc in sorted(app.services.items())
    ]
    return DesiredState(host=host, revision=config.revision, services=services)


class DesiredPublisher:
    def __init__(self, bus: Bus, fleet: FleetView) -> None:
        self._bus = bus
        self._fleet = fleet
        self._config: FleetConfig | None = None
        self._written: dict[str, DesiredState] = {}
        self._wake = asyncio.Event()

    async def config_changed(self, config: FleetConfig) -> None:
        self._config = config
        self._wake.set()

    def hosts(self) -> set[str]:
        named = set(self._config.hosts) if self._config else set()
        return named | set(self._fleet.hosts)

    async def publish(self) -> None:
        """One life of the loop: writes whatever differs, then waits for a reason to look again."""
        generation = self._bus.generation
        self._written.clear()  # a new life (after a reconnect) writes everything again
        kv = await self._bus.kv(subjects.DESIRED_BUCKET)
        while self._bus.generation == generation:
            self._wake.clear()
            self._fleet.changed.clear()
            if self._config is not None:
                for host in sorted(self.hosts()):
                    desired = desired_for_host(self._config, host)
                    if self._written.get(host) != desired:
                        await kv.put(subjects.desired_key(host), encode(desired))
                        self._written[host] = desired
            await _either(self._wake, self._fleet.changed, timeout=5.0)


async def _either(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
