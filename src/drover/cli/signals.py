"""Running a long-lived component until SIGINT/SIGTERM, then letting it drain — within a bound.

The first signal sets `stop`: the component stops taking work and finishes what is in flight.
A second signal, or a drain that outlasts `shutdown_bound`, ends the process at once, after
logging every task still pending, so a stuck shutdown is never silent and never endless.

With `on_reload`, SIGHUP calls it (in the event loop), except once draining has begun. What it
raises is logged, never fatal: a reload that fails leaves the component as it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

SHUTDOWN_BOUND = 60.0  # above the agent's drain (30 s) plus the bus and nats-server stops


async def run_until_signalled(
    main: Callable[[asyncio.Event], Awaitable[None]],
    shutdown_bound: float = SHUTDOWN_BOUND,
    on_reload: Callable[[], None] | None = None,
) -> None:
    """Run `main(stop)`; the first SIGINT or SIGTERM sets `stop` so it can drain in order;
    SIGHUP calls `on_reload`, if given."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    watchdog: list[asyncio.TimerHandle] = []

    def on_signal(signum: int) -> None:
        if stop.is_set():
            _give_up(f"second {signal.Signals(signum).name}: exiting without draining")
        log.info("%s: draining (again to force)", signal.Signals(signum).name)
        stop.set()
        watchdog.append(
            loop.call_later(shutdown_bound, _give_up, f"still draining after {shutdown_bound}s")
        )

    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload, stop, on_reload)
        handled.append(signal.SIGHUP)
    try:
        await main(stop)
    finally:
        for handle in watchdog:
            handle.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)


def _reload(stop: asyncio.Event, on_reload: Callable[[], None]) -> None:
    if stop.is_set():
        log.info("SIGHUP while draining: not reloading")
        return
    log.info("SIGHUP: reloading")
    try:
        on_reload()
    except Exception:
        log.exception("reload failed; going on as before")


def _give_up(why: str) -> None:
    log.error("%s; tasks still pending:", why)
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=3)
        where = "; ".join(f"{f.f_code.co_filename}:{f.f_lineno}" for f in frames)
        log.error("  %s at %s", task.get_name(), where or "?")
    logging.shutdown()
    sys.stderr.flush()
    os._exit(1)
