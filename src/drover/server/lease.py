"""Which server process drives the rollouts: one at a time, the one that holds the lease.

Several server processes serve the API, watch the fleet and take results side by side (a
result goes to one of them: they share its durable consumer). Driving the rollouts — releasing
batches, dispatching, expiring, sending aborts — and writing desired states is the work of one:
two drivers could each decide on a halt, and disagree.

The lease is a key in the KV bucket `drover-leases`, whose entries live `LEASE_TTL` seconds
(the bucket's max age, kept by nats-server's clock alone). The holder writes it again every
`RENEW` seconds with the revision it last wrote (compare and set), so nobody can take it while
it is held, and a holder that stopped (crashed, cut off) loses it when its entry ages out. A
holder that cannot renew stops driving after `GIVE_UP` seconds, before its entry can age out
and another take it. A server that stops cleanly deletes its entry: another takes over at its
next try, within `RENEW` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.topology import LEASE_TTL
from drover.ops.cancels import bounded, checkpoint

log = logging.getLogger(__name__)

RENEW = 2.0
GIVE_UP = 0.7 * LEASE_TTL  # unrenewed this long: stop, well before the entry ages out


class Lease:
    def __init__(self, bus: Bus, holder: str, name: str = "rollouts") -> None:
        self._bus = bus
        self.holder = holder
        self.name = name
        self._revision: int | None = None  # of our entry, while we hold it
        self._renewed_at = 0.0
        self.held = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()

    async def keep(self) -> None:
        """Take the lease when it is free and renew it while held; for ops.loops.forever.
        Errors are retried here, every RENEW, so a holder's renewals never wait out a backoff;
        `while_held` stops the work once the lease has gone GIVE_UP seconds unrenewed."""
        loop = asyncio.get_running_loop()
        kv = await self._bus.kv(subjects.LEASES_BUCKET)
        failing = False
        while True:
            sent = loop.time()  # the entry is stored after this: its age counts from later
            try:
                if self._revision is None:
                    self._revision = await kv.create(self.name, self.holder.encode())
                    self._take(sent)
                else:
                    self._revision = await kv.update(
                        self.name, self.holder.encode(), last=self._revision
                    )
                    self._renewed_at = sent
            except nats.js.errors.KeyWrongLastSequenceError:
                with contextlib.suppress(nats.errors.Error, TimeoutError):  # tried again soon
                    await self._someone_wrote(kv)
            except (nats.errors.Error, TimeoutError) as err:
                if not failing:
                    log.warning("lease %s: cannot reach the bus (%r); trying again", self.name, err)
                failing = True
            else:
                if failing:
                    log.info("lease %s: the bus answers again", self.name)
                failing = False
            checkpoint()  # the cancel a NATS call this round may have swallowed
            await asyncio.sleep(RENEW)

    async def _someone_wrote(self, kv: KeyValue) -> None:
        """The entry is not the one we last wrote (or it exists, as we tried to make it):
        another holds it, or it is ours after all — a renewal, or the take itself, that was
        stored but whose answer was lost (a bus that failed over just then)."""
        entry = None
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await kv.get(self.name)
        if entry is None or entry.value != self.holder.encode() or entry.revision is None:
            if self._revision is not None:
                self._give_up("another server holds it")
            return  # another holds it: we wait for it to age out or be deleted
        if self._revision is not None:
            self._revision = entry.revision
            return
        # Our own take: renew it before holding, as its age counts from when it was stored.
        sent = asyncio.get_running_loop().time()
        self._revision = await kv.update(self.name, self.holder.encode(), last=entry.revision)
        self._take(sent)

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), so another server need not wait."""
        revision = self._revision
        self._give_up("this server stops")
        if revision is None:
            return
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            kv = await self._bus.kv(subjects.LEASES_BUCKET)
            await kv.delete(self.name, last=revision)

    async def while_held(self, work: Callable[[], Awaitable[None]]) -> None:
        """Wait for the lease, then run `work` until it returns or the lease is lost (then it
        is cancelled, and this returns to be run again by its loop)."""
        await self.held.wait()
        task = asyncio.ensure_future(work())
        lost = asyncio.ensure_future(self._until_lost())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()  # its failure, for the loop to count and retry

    async def _until_lost(self) -> None:
        """Until the lease is lost, or has gone GIVE_UP seconds unrenewed (given up then)."""
        loop = asyncio.get_running_loop()
        while not self._lost.is_set():
            left = self._renewed_at + GIVE_UP - loop.time()
            if left <= 0:
                self._give_up(f"not renewed for {GIVE_UP:.0f}s")
                return
            with contextlib.suppress(TimeoutError):
                await bounded(self._lost.wait(), left)

    def _take(self, now: float) -> None:
        self._renewed_at = now
        self._lost.clear()
        self.held.set()
        log.info("this server (%s) now drives the rollouts", self.holder)

    def _give_up(self, why: str) -> None:
        if self._revision is not None:
            log.warning("this server (%s) no longer drives the rollouts: %s", self.holder, why)
        self._revision = None
        self.held.clear()
        self._lost.set()
