"""The simulated provider keeps the provider contract: services at their target at once,
operations that take effect at once, and failures on demand."""

from __future__ import annotations

import pytest

from drover.agent.errors import UnknownService
from drover.agent.providers.base import OperationFailed
from drover.bus.messages import DesiredService, ServiceState
from drover.model.action import ActionKind
from drover.model.status import ServiceStatus, TargetStatus
from drover.ops.clock import SystemClock
from drover.sim.provider import SimulatedProvider


def desired(service: str, target: TargetStatus = TargetStatus.RUNNING) -> DesiredService:
    return DesiredService(application="app", service=service, provider="process", target=target)


async def test_services_start_at_their_target_and_operations_take_effect_at_once() -> None:
    provider = SimulatedProvider("process", "h1", SystemClock())
    told: list[ServiceState] = []
    provider.subscribe(told.append)

    await provider.apply([desired("web"), desired("cron", TargetStatus.STOPPED)])
    assert {s.service: s.status for s in provider.states()} == {
        "web": ServiceStatus.RUNNING,
        "cron": ServiceStatus.STOPPED,
    }
    assert [s.provider for s in told] == ["process", "process"]

    assert await provider.act("app", "web", ActionKind.RESTART) == "simulated restart"
    assert await provider.act("app", "cron", ActionKind.START) == "simulated start"
    states = {s.service: s for s in provider.states()}
    assert states["web"].restarts == 1 and states["cron"].status is ServiceStatus.RUNNING
    assert await provider.act("app", "web", ActionKind.STOP) == "simulated stop"
    assert provider.running() == [("app", "cron")]

    assert provider.fail("app", "cron")
    assert not provider.fail("app", "cron")  # failed already: only a running one fails
    assert told[-1].status is ServiceStatus.FAILED and told[-1].exit_code == 1

    await provider.apply([desired("web")])  # cron is no longer desired: forgotten
    assert [s.service for s in provider.states()] == ["web"]
    with pytest.raises(UnknownService):
        await provider.act("app", "cron", ActionKind.START)
    with pytest.raises(OperationFailed, match="not an operation on a service"):
        await provider.act("app", "web", ActionKind.PING)
