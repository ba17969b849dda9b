"""Loops that cannot die: a failing body is retried with backoff, logged once per streak, and
a body that ran well for a while before failing again starts a new streak."""

from __future__ import annotations

import asyncio
import logging

import pytest

from drover.ops import loops
from drover.ops.counters import Counters
from drover.ops.loops import Backoff, forever


async def test_a_failure_after_a_good_spell_is_logged_anew_and_retried_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loops, "HEALTHY_AFTER", 0.2)
    runs = [0.0, 0.0, 0.3, 0.0]  # seconds each life runs before it fails
    lives: list[float] = []
    healthy = asyncio.Event()

    async def body() -> None:
        lives.append(asyncio.get_running_loop().time())
        life = len(lives)
        if life > len(runs):
            healthy.set()
            await asyncio.Event().wait()  # healthy from now on
        await asyncio.sleep(runs[life - 1])
        raise ConnectionError(f"life {life}")

    counters = Counters()
    caplog.set_level(logging.WARNING, logger="drover.ops.loops")
    task = asyncio.create_task(forever("probe", body, counters, Backoff(0.05, 0.5)))
    try:
        async with asyncio.timeout(10):
            await healthy.wait()
    finally:
        task.cancel()
    assert counters.get("loop_errors.probe") == len(runs)
    logged = [r.getMessage() for r in caplog.records if "loop probe failed" in r.getMessage()]
    # Lives 1 and 2 are one streak; life 3 ran 0.3 s (> HEALTHY_AFTER) first: a new one.
    assert logged == [
        "loop probe failed, retrying with backoff: ConnectionError('life 1')",
        "loop probe failed, retrying with backoff: ConnectionError('life 3')",
    ]
