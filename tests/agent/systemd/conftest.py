"""One real systemd for the whole session, and a fresh set of units for each test."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import pytest

from drover.agent.providers.systemd.provider import SystemdProvider
from drover.bus.messages import DesiredService, ServiceState
from drover.model.status import TargetStatus
from drover.ops.clock import SystemClock
from tests.systemd_namespace import SystemdNamespace, boot_or_skip

SLEEPER = "[Service]\nType=simple\nExecStart=/bin/sleep infinity\n"
FAILING = "[Service]\nType=oneshot\nExecStart=/bin/false\n"
ONESHOT = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
RELOADABLE = SLEEPER + "ExecReload=/bin/true\n"
SLOW = "[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n"

_numbers = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Units:
    """This test's own units, so tests sharing one systemd never see each other's."""

    sleeper: str  # Type=simple, /bin/sleep infinity
    failing: str  # Type=oneshot, /bin/false: its start job fails
    oneshot: str  # Type=oneshot with RemainAfterExit
    reloadable: str  # like sleeper, with ExecReload
    slow: str  # Type=oneshot that takes a minute to start
    missing: str  # never written


@pytest.fixture(scope="session")
def systemd() -> Iterator[SystemdNamespace]:
    namespace = boot_or_skip()
    try:
        yield namespace
    finally:
        namespace.stop()


@pytest.fixture
def own_systemd() -> Iterator[SystemdNamespace]:
    """A systemd of the test's own, for tests that break it."""
    namespace = boot_or_skip()
    try:
        yield namespace
    finally:
        namespace.stop()


def write_units(systemd: SystemdNamespace) -> Units:
    prefix = f"t{next(_numbers)}"
    units = Units(
        sleeper=f"{prefix}-sleeper.service",
        failing=f"{prefix}-failing.service",
        oneshot=f"{prefix}-oneshot.service",
        reloadable=f"{prefix}-reloadable.service",
        slow=f"{prefix}-slow.service",
        missing=f"{prefix}-missing.service",
    )
    systemd.write_units(
        {
            units.sleeper: SLEEPER,
            units.failing: FAILING,
            units.oneshot: ONESHOT,
            units.reloadable: RELOADABLE,
            units.slow: SLOW,
        }
    )
    return units


@pytest.fixture
def units(systemd: SystemdNamespace) -> Iterator[Units]:
    units = write_units(systemd)
    yield units
    running = [units.sleeper, units.oneshot, units.reloadable, units.slow]
    systemd.systemctl("stop", "--no-block", *running, check=False)


def spec(
    unit: str, target: TargetStatus = TargetStatus.RUNNING, service: str = "web"
) -> DesiredService:
    return DesiredService(
        application="shop", service=service, provider="systemd", target=target, unit=unit
    )


P = TypeVar("P", bound=SystemdProvider)


def connected(
    systemd: SystemdNamespace,
) -> contextlib.AbstractAsyncContextManager[tuple[SystemdProvider, list[ServiceState]]]:
    """A connected SystemdProvider and every state it has delivered; closed at the end."""
    return connected_as(systemd, SystemdProvider)


@contextlib.asynccontextmanager
async def connected_as(
    systemd: SystemdNamespace, kind: type[P], **options: Any
) -> AsyncIterator[tuple[P, list[ServiceState]]]:
    """A connected provider (of `kind`, given `options` too) and every state it has
    delivered; closed at the end."""
    seen: list[ServiceState] = []
    async with asyncio.TaskGroup() as tg:
        provider = kind("h1", SystemClock(), tg, systemd.bus_address, **options)
        provider.subscribe(seen.append)
        await provider.connect()
        try:
            yield provider, seen
        finally:
            await provider.close()
