"""Loops that cannot die: a failing body is retried with backoff, logged once per streak, and
a body that ran well for a while before failing again starts a new streak. And loops that do
die when told to: a cancel ends them even where the body turned it into another error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from drover.ops import loops
from drover.ops.counters import Counters
from drover.ops.loops import Backoff, forever, until_success


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


class RollbackFailed(Exception):
    """What a database layer may raise when the transaction a cancel interrupted cannot be
    rolled back: it replaces the CancelledError on the way out."""


class RanAgain(BaseException):
    """A body run again after its loop was cancelled: ends the test's loop either way."""


def _body(after_cancel: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    lives = 0

    async def body() -> None:
        nonlocal lives
        lives += 1
        if lives > 1:
            raise RanAgain
        try:
            await asyncio.Event().wait()  # a statement under way
        except asyncio.CancelledError:
            after_cancel()

    return body


def _into_an_error() -> None:
    raise RollbackFailed("cannot perform operation: another operation is cancelling")


@pytest.mark.parametrize("after_cancel", [_into_an_error, lambda: None])
async def test_a_cancelled_loop_ends_whatever_its_body_makes_of_the_cancel(
    after_cancel: Callable[[], None],
) -> None:
    counters = Counters()
    for run in (forever, until_success):
        task = asyncio.create_task(run("probe", _body(after_cancel), counters, Backoff(0.01, 0.01)))
        await asyncio.sleep(0.05)  # the body is under way
        task.cancel()
        await asyncio.wait({task}, timeout=2)
        # Without the check the loop would back off and run its body again (RanAgain).
        assert task.cancelled()
    assert counters.get("loop_errors.probe") == 0  # a stop, not a failure


async def test_a_loop_whose_body_used_a_timeout_goes_on() -> None:
    """`asyncio.timeout` cancels the body and takes the cancel back (TimeoutError): that is an
    ordinary failure, and the loop retries."""
    lives = 0
    again = asyncio.Event()

    async def body() -> None:
        nonlocal lives
        lives += 1
        if lives > 1:
            again.set()
            await asyncio.Event().wait()
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    counters = Counters()
    task = asyncio.create_task(forever("probe", body, counters, Backoff(0.01, 0.01)))
    try:
        async with asyncio.timeout(5):
            await again.wait()
    finally:
        task.cancel()
    assert counters.get("loop_errors.probe") == 1
