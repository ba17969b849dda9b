"""Cancels that are not lost (drover.ops.cancels): a stop is a cancel, and a loop that loses
one never stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import pytest

from drover.ops.cancels import bounded, checkpoint, end, stop_requested


async def _cancelled_as_the_result_comes(wait: str) -> str:
    """Cancel a task in the very step its awaited future gets its result."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[None] = loop.create_future()

    async def waiting() -> str:
        if wait == "bounded":
            await bounded(result, 5)
        else:
            await asyncio.wait_for(result, 5)
        return "went on"

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)  # the task now waits
    result.set_result(None)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "stopped"


async def test_bounded_keeps_a_cancel_that_comes_with_the_result() -> None:
    assert await _cancelled_as_the_result_comes("bounded") == "stopped"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 rebuilt wait_for on timeout")
async def test_wait_for_loses_it_on_python_3_11() -> None:
    """Why `bounded` exists, and ruff bans `asyncio.wait_for` in src/."""
    assert await _cancelled_as_the_result_comes("wait_for") == "went on"


async def test_bounded_times_out() -> None:
    with pytest.raises(TimeoutError):
        await bounded(asyncio.Event().wait(), 0.01)
    assert not stop_requested()  # its own cancel is taken back: a timeout is not a stop


async def test_checkpoint_raises_the_cancel_a_library_swallowed() -> None:
    reached = asyncio.Event()

    async def loop_body() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # what a library did with it
            await asyncio.Event().wait()
        reached.set()
        checkpoint()
        await asyncio.sleep(3600)  # without the checkpoint: on and on

    task = asyncio.create_task(loop_body())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert reached.is_set()
    assert task.cancelled()


async def test_end_cancels_again_until_the_task_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    swallowed = 0

    async def swallows(times: int) -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed >= times:
                    raise
                swallowed += 1

    ends = asyncio.create_task(swallows(2), name="swallows-twice")
    await asyncio.sleep(0)
    await end([ends], bound=5)
    assert ends.cancelled()
    assert swallowed == 2

    caplog.set_level(logging.WARNING, logger="drover.ops.cancels")
    stuck = asyncio.create_task(swallows(10**9), name="never-ends")
    await asyncio.sleep(0)
    await end([stuck], bound=0.3)
    assert not stuck.done()
    assert "1 loops did not end within 0.3s of being cancelled: never-ends" in caplog.text
    swallowed = 10**9  # the test's own clean-up: the next cancel ends it
    stuck.cancel()
    await asyncio.wait({stuck}, timeout=1)
    assert stuck.cancelled()
