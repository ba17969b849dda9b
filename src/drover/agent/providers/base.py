"""The contract every provider keeps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind

StateListener = Callable[[ServiceState], None]


class Listeners:
    """Whoever wants a provider's state changes (the reconciler, in the agent); called in turn."""

    def __init__(self) -> None:
        self._all: list[StateListener] = []

    def add(self, listener: StateListener) -> None:
        self._all.append(listener)

    def __call__(self, state: ServiceState) -> None:
        for listener in self._all:
            listener(state)


class Provider(Protocol):
    name: str

    def subscribe(self, listener: StateListener) -> None:
        """Call `listener` with the new state every time a service changes."""

    async def apply(self, desired: Sequence[DesiredService]) -> None:
        """Take on exactly these services: start new running ones, stop ones that should be
        stopped, stop and forget ones no longer listed."""

    async def act(self, application: str, service: str, kind: ActionKind) -> str:
        """Carry out one operation; return a line saying what happened.
        Raises UnknownService, or OperationFailed with what went wrong."""

    def states(self) -> list[ServiceState]:
        """The current state of every service this provider holds."""

    async def close(self) -> None:
        """Stop everything this provider started (the agent is shutting down)."""


NOT_A_SERVICE_OPERATION = "a command or a ping is not an operation on a service"


class OperationFailed(Exception):
    def __init__(self, application: str, service: str, reason: str) -> None:
        super().__init__(f"{application}/{service}: {reason}")
        self.application = application
        self.service = service
        self.reason = reason
