"""Cancels that are not lost: a stop is a cancel, and a loop that loses one never stops.

Two ways a cancel gets lost on Python 3.11:

- `asyncio.wait_for` runs what it waits for as a task of its own, and a cancel that comes just
  as that finishes is dropped: `wait_for` returns the result as if nothing had happened.
  `bounded` waits in the caller's own task (`asyncio.timeout`), where a cancel cannot be
  dropped; 3.12 rebuilt `wait_for` the same way. Ruff bans `wait_for` here.
- A library does it for us: nats-py's `fetch` and KV `updates` wait through 3.11's `wait_for`
  in a task of their own (a stopping server's results loop was seen back in its fetch loop,
  its cancel gone), and a library may raise an error of its own in place of a CancelledError
  that interrupted it. Python still counts the cancel request on the task: the fetch and
  watch loops ask `stop_requested` when a wait ends, and every loop that calls NATS calls
  `checkpoint` at the end of each round, which raises the CancelledError that went missing.

And where a loop waits somewhere neither reaches, `end` cancels it again until it is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


async def bounded(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds` (None: no bound)."""
    async with asyncio.timeout(seconds):
        return await awaitable


def stop_requested() -> bool:
    """Whether this task was asked to stop (cancelled), whatever became of the CancelledError.

    `asyncio.timeout` takes back the cancels it makes itself, so a timeout is not a stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def checkpoint() -> None:
    """Raise the CancelledError a library swallowed, if this task was asked to stop."""
    if stop_requested():
        raise asyncio.CancelledError


# How long a stop cancels its loops again and again before it says which are stuck.
LOOPS_END_BOUND = 5.0


async def end(tasks: list[asyncio.Task[None]], bound: float = LOOPS_END_BOUND) -> None:
    """Cancel the tasks and wait until they have ended, cancelling again any that goes on,
    for at most `bound` seconds (then a warning: what still runs is stuck for good)."""
    clock = asyncio.get_running_loop()
    deadline = clock.time() + bound
    while pending := [task for task in tasks if not task.done()]:
        if clock.time() >= deadline:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning(
                "%d loops did not end within %gs of being cancelled: %s", len(pending), bound, names
            )
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)
