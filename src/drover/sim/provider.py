"""A provider whose services exist only in memory, for simulated hosts.

It keeps the provider contract (providers/base.py) like any other, so the agent around it is the
real one: the reconciler judges what it reports, the reporter writes it to the bus, the executor
runs actions through it. A service is at its target the moment it is told; an operation takes
effect at once. `fail` is the simulation's fault: the service goes `failed`, and under
`policy: enforce` the agent's reconciler starts it again after its backoff, as it would a real
one.
"""

from __future__ import annotations

from collections.abc import Sequence

from drover.agent.errors import UnknownService
from drover.agent.providers.base import (
    NOT_A_SERVICE_OPERATION,
    Listeners,
    OperationFailed,
    StateListener,
)
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import Clock

_AFTER: dict[ActionKind, ServiceStatus] = {
    ActionKind.START: ServiceStatus.RUNNING,
    ActionKind.RESTART: ServiceStatus.RUNNING,
    ActionKind.STOP: ServiceStatus.STOPPED,
}


class SimulatedProvider:
    def __init__(self, name: str, host: str, clock: Clock) -> None:
        self.name = name  # the provider it stands in for: the config names that one
        self._host = host
        self._clock = clock
        self._listeners = Listeners()
        self._states: dict[tuple[str, str], ServiceState] = {}

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.add(listener)

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        wanted = {(d.application, d.service): d for d in desired}
        for key in set(self._states) - set(wanted):
            del self._states[key]
        for key, service in wanted.items():
            if key not in self._states:  # new: at its target at once
                running = service.target is TargetStatus.RUNNING
                self._set(*key, ServiceStatus.RUNNING if running else ServiceStatus.STOPPED)

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        state = self._states.get((application, service))
        if state is None:
            raise UnknownService(application, service)
        if kind not in _AFTER:
            raise OperationFailed(application, service, NOT_A_SERVICE_OPERATION)
        restarts = state.restarts + (kind is ActionKind.RESTART)
        self._set(application, service, _AFTER[kind], restarts=restarts)
        return f"simulated {kind.value}"

    def fail(self, application: str, service: str) -> bool:
        """Make a running service fail; False if it is not running (or not here)."""
        state = self._states.get((application, service))
        if state is None or state.status is not ServiceStatus.RUNNING:
            return False
        self._set(application, service, ServiceStatus.FAILED, exit_code=1, message="simulated")
        return True

    def running(self) -> list[tuple[str, str]]:
        return [key for key, s in self._states.items() if s.status is ServiceStatus.RUNNING]

    def states(self) -> list[ServiceState]:
        return list(self._states.values())

    async def close(self) -> None:
        self._states.clear()

    def _set(
        self,
        application: str,
        service: str,
        status: ServiceStatus,
        *,
        restarts: int = 0,
        exit_code: int | None = None,
        message: str = "",
    ) -> None:
        state = ServiceState(
            host=self._host,
            application=application,
            service=service,
            provider=self.name,
            status=status,
            since=self._clock.now(),
            exit_code=exit_code,
            restarts=restarts,
            message=message,
        )
        self._states[(application, service)] = state
        self._listeners(state)
