from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from drover.agent.ssh.connections import SshPool


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., SshPool]]:
    """Makes pools (SshPool's arguments), every one closed at the end, failed test or not."""
    made: list[SshPool] = []

    def make(*args: object, **kwargs: object) -> SshPool:
        made.append(SshPool(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for pool in made:
        await pool.close()
