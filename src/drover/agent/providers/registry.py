"""The providers this host has, and which one holds each service.

Providers are registered explicitly (no discovery by import): `process` always, `systemd` when
the system bus answers. A desired service whose provider this host lacks is not dropped
silently: it is reported `unknown`, saying why, and actions on it fail with that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from drover.agent.errors import UnknownService
from drover.agent.providers.base import (
    NOT_A_SERVICE_OPERATION,
    Listeners,
    OperationFailed,
    Provider,
    StateListener,
)
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus
from drover.ops.clock import Clock

log = logging.getLogger(__name__)


class Providers:
    def __init__(self, host: str, providers: Sequence[Provider], clock: Clock) -> None:
        self.host = host
        self.by_name = {p.name: p for p in providers}
        self._clock = clock
        self._listeners = Listeners()
        self._provider_of: dict[tuple[str, str], str] = {}

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)
        for provider in self.by_name.values():
            provider.subscribe(listener)

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        self._provider_of = {(d.application, d.service): d.provider for d in desired}
        for name, provider in self.by_name.items():
            await provider.apply([d for d in desired if d.provider == name])
        for missing in (d for d in desired if d.provider not in self.by_name):
            self._announce_unavailable(missing)

    def services_of(self, application: str) -> list[str]:
        """The application's services on this host, by name."""
        return sorted(svc for app, svc in self._provider_of if app == application)

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        if kind in (ActionKind.COMMAND, ActionKind.PING):  # the executor does these itself
            raise OperationFailed(application, service, NOT_A_SERVICE_OPERATION)
        name = self._provider_of.get((application, service))
        if name is None:
            raise UnknownService(application, service)
        provider = self.by_name.get(name)
        if provider is None:
            raise OperationFailed(application, service, f"provider {name} is not available here")
        return await provider.act(application, service, kind)

    async def close(self) -> None:
        for provider in self.by_name.values():
            await provider.close()

    def _announce_unavailable(self, desired: DesiredService) -> None:
        state = ServiceState(
            host=self.host,
            application=desired.application,
            service=desired.service,
            provider=desired.provider,
            status=ServiceStatus.UNKNOWN,
            since=self._clock.now(),
            message=f"provider {desired.provider} is not available on this host",
        )
        self._listeners(state)
