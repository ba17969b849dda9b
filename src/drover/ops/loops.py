"""Loops that never die: every background loop runs through `forever`.

A loop body that raises is logged once per failure streak (not once per retry), counted, and
run again after a jittered exponential backoff. Recovery is logged too. Only cancellation —
the owning TaskGroup shutting down — ends a loop, even when the body turned the CancelledError
into another error on its way out (`ops.cancels`).

A streak ends when the body returns, or when it ran HEALTHY_AFTER seconds before it failed:
most bodies (fetch and watch loops) return only after a reconnect, and without this a loop
that failed once would stay silent about every later failure, and wait out the longest
backoff at each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from drover.ops.cancels import stop_requested
from drover.ops.counters import Counters

log = logging.getLogger(__name__)

T = TypeVar("T")

HEALTHY_AFTER = 30.0  # seconds a body ran before it failed: a new failure streak begins


class Backoff:
    """Exponential backoff with full jitter between `base` and `cap` seconds."""

    def __init__(self, base: float = 0.1, cap: float = 10.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


async def forever(
    name: str,
    body: Callable[[], Awaitable[None]],
    counters: Counters,
    backoff: Backoff | None = None,
) -> None:
    """Run `body` again and again; a body that returns normally is restarted at once.

    Bodies are expected to loop themselves and return only to be recreated (for instance after
    a reconnect), so a normal return resets the backoff.
    """
    backoff = backoff or Backoff()
    clock = asyncio.get_running_loop()
    failing = False
    while True:
        started = clock.time()
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if stop_requested():
                raise asyncio.CancelledError from err
            counters.inc(f"loop_errors.{name}")
            if failing and clock.time() - started >= HEALTHY_AFTER:
                failing = False  # it ran well meanwhile: this failure starts a new streak
                backoff.reset()
            if not failing:
                log.warning("loop %s failed, retrying with backoff: %r", name, err)
                log.debug("loop %s failure", name, exc_info=err)
                failing = True
            await asyncio.sleep(backoff.next_delay())
            continue
        if stop_requested():
            raise asyncio.CancelledError
        if failing:
            log.info("loop %s recovered", name)
            failing = False
        backoff.reset()


async def until_success(
    name: str, step: Callable[[], Awaitable[T]], counters: Counters, backoff: Backoff | None = None
) -> T:
    """Run a set-up step until it succeeds once, retrying with backoff."""
    backoff = backoff or Backoff()
    while True:
        try:
            result = await step()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if stop_requested():
                raise asyncio.CancelledError from err
            counters.inc(f"loop_errors.{name}")
            log.warning("%s failed, retrying: %r", name, err)
            await asyncio.sleep(backoff.next_delay())
            continue
        if stop_requested():
            raise asyncio.CancelledError
        return result


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await `work` unless `stop` is set first, in which case `work` is cancelled.

    Returns (True, result) when the work finished, (False, None) when stop came first.
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return True, task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False, None
