"""The systemd notify protocol (sd_notify(3)), and a watchdog that pings only on progress.

A service started with Type=notify gets `$NOTIFY_SOCKET`: a datagram socket, by path or (`@name`)
in the abstract namespace. Each message is a datagram of `KEY=value` lines. Without the variable
(not run by systemd) every call here does nothing.

The watchdog (`WatchdogSec=`, seen as `$WATCHDOG_USEC`, for our pid if `$WATCHDOG_PID` says so)
wants `WATCHDOG=1` more often than every WatchdogSec; `keep_watchdog` sends it every half of it,
but only while the process makes progress:

- the event loop answered: the pinging task itself woke up less than half an interval late (a
  loop blocked by a synchronous call or a CPU-bound stretch wakes it later than that);
- none of the watched tasks has ended, other than by being cancelled. Our loops run through
  `ops.loops.forever` and end only by cancellation, so one that ended is a bug.

systemd arms the watchdog only once READY=1 has arrived. Until then each ping also carries
`EXTEND_TIMEOUT_USEC` (one watchdog interval), so a start that takes long (waiting for NATS) may
outlast `TimeoutStartSec=` while the same checks pass, and one that hangs times out.

What it does not check: whether NATS is reachable (a restart would not bring it back; the bus
reconnects by itself) or whether a single action is slow (actions have their own deadlines).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Collection, MutableMapping
from typing import Any

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the service manager; a no-op when `address` is None."""

    def __init__(self, address: str | None = None, watchdog_interval: float | None = None) -> None:
        self.address = address  # a socket path, or "@name" in the abstract namespace
        self.watchdog_interval = watchdog_interval  # seconds; None: systemd does not watch us
        self.ready_sent = False
        self._failing = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str], pid: int | None = None) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, and remove them from `environ`,
        so that the processes we start do not take systemd's messages for theirs."""
        address = environ.pop("NOTIFY_SOCKET", "") or None
        usec = environ.pop("WATCHDOG_USEC", "")
        watchdog_pid = environ.pop("WATCHDOG_PID", "")
        if address is not None and not address.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET=%s: not a path or @name; not notifying systemd", address)
            address = None
        own_pid = os.getpid() if pid is None else pid
        interval = None
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(own_pid)):
            interval = int(usec) / 1_000_000
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str | None = None) -> bool:
        self.ready_sent = True
        return self.send("READY=1", *_status(status))

    def reloading(self) -> bool:
        # systemd ≥ 253 wants the time the reload began with it; older ones ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        """A ping; before READY=1 also a start timeout extended by one watchdog interval."""
        if self.ready_sent or self.watchdog_interval is None:
            return self.send("WATCHDOG=1")
        usec = round(self.watchdog_interval * 1_000_000)
        return self.send("WATCHDOG=1", f"EXTEND_TIMEOUT_USEC={usec}")

    def send(self, *fields: str) -> bool:
        """Send one datagram; True if it left. A failure is logged once per streak, never
        raised: systemd's bookkeeping must not stop the agent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full queue drops the message, never blocks the loop
                sock.sendto("\n".join(fields).encode(), target)
        except OSError as err:
            if not self._failing:
                log.warning("cannot notify systemd at %s: %s", self.address, err)
                self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd at %s again", self.address)
            self._failing = False
        return True


def _status(text: str | None) -> list[str]:
    return [] if text is None else ["STATUS=" + " ".join(text.splitlines())]


async def keep_watchdog(notifier: Notifier, watched: Collection[asyncio.Task[Any]]) -> None:
    """Send WATCHDOG=1 every half watchdog interval while there is progress (module docstring).

    `watched` is read at every ping, so it may be filled after this starts. Returns at once if
    systemd does not watch us; otherwise runs until cancelled. Not pinging is logged when it
    begins and when it ends.
    """
    if notifier.watchdog_interval is None:
        return
    period = notifier.watchdog_interval / 2
    loop = asyncio.get_running_loop()  # its clock: the lag we measure is the loop's own
    lag = 0.0
    withheld: str | None = None
    while True:
        problem = _no_progress(lag, period, watched)
        if problem is None:
            notifier.watchdog()
            if withheld is not None:
                log.info("watchdog: progress again, pinging systemd")
        elif problem != withheld:
            log.error("watchdog: not pinging systemd: %s", problem)
        withheld = problem
        due = loop.time() + period
        await asyncio.sleep(period)
        lag = loop.time() - due


def _no_progress(lag: float, bound: float, watched: Collection[asyncio.Task[Any]]) -> str | None:
    """Why there is no progress, or None if there is."""
    if lag >= bound:
        return f"the event loop answered {lag:.1f}s late (bound {bound:g}s)"
    for task in watched:
        if task.done() and not task.cancelled():
            return f"task {task.get_name()} ended"
    return None
