"""Commands' output: from the bus into the system of record, and the end of each host's stream.

ingest:  a durable consumer of DROVER_OUTPUT, like the results one: made anew after every
         reconnect, shared by every server process. A chunk is stored (once, store/output.py)
         and only then acked. A chunk on another host's subject is dropped: one writer per
         subject.
closing: a host's stream ends once the host is final and every chunk its result counted is
         stored — or, when some never come (lost with the bus), `missing_grace` after it became
         final, saying how many are missing. A host the server marked `cancelled` as it sent
         it an abort is waited for the same way: its answer says how it ended and what it
         sent. It reads only the database, so it ends streams whatever server process took
         the result or the chunks.

Each row stored wakes `changes`: live readers in this process look at once rather than at their
next poll of the database (which is what makes them work across server processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import OutputChunk, decode
from drover.ops.cancels import bounded
from drover.ops.clock import Clock
from drover.store.output import OpenHost, OutputBusy, OutputStore, Stored

log = logging.getLogger(__name__)

MISSING_GRACE = timedelta(seconds=30)
CLOSE_EVERY = 0.5


class Changes:
    """Wakes whoever waits, each time something was stored; and for good once closed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self.notify()

    def mark(self) -> asyncio.Event:
        """Take before looking: `wait(mark)` then also returns for what was stored meanwhile."""
        return self._event

    async def wait(self, timeout: float, mark: asyncio.Event | None = None) -> None:
        """Until the next notify (after `mark`, when given), or `timeout` seconds."""
        event = mark or self._event
        with contextlib.suppress(TimeoutError):
            await bounded(event.wait(), timeout)


class OutputCollector:
    def __init__(
        self,
        store: OutputStore,
        bus: Bus,
        clock: Clock,
        missing_grace: timedelta = MISSING_GRACE,
    ) -> None:
        self.store = store
        self.changes = Changes()
        self._bus = bus
        self._clock = clock
        self._missing_grace = missing_grace
        self._wake = asyncio.Event()

    async def consume(self) -> None:
        """One life of the output loop; returns after a reconnect to be recreated."""
        await consume(
            self._bus,
            stream=subjects.OUTPUT_STREAM,
            subject=subjects.OUTPUT_ALL,
            durable=subjects.SERVER_OUTPUT_CONSUMER,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_deliver=-1),
            handle=self._take,
            batch=256,
        )

    async def _take(self, msg: Msg) -> None:
        try:
            chunk = decode(OutputChunk, msg.subject, msg.data)
        except MalformedMessage as err:
            await self._drop(msg, str(err))
            return
        if msg.subject != subjects.output_subject(chunk.host):
            await self._drop(msg, f"output of host {chunk.host!r} published on {msg.subject}")
            return
        try:
            stored = await self.store.append(
                chunk.action_id, chunk.host, chunk.seq, chunk.data, self._clock.now()
            )
        except OutputBusy as err:
            log.warning("%s; it comes again", err)
            await msg.nak(delay=1.0)
            return
        if stored is Stored.UNKNOWN:
            await self._drop(msg, f"output for {chunk.action_id} on {chunk.host}: no such command")
            return
        await msg.ack()
        if stored is Stored.STORED:
            self.changes.notify()
            self._wake.set()  # it may be the last chunk a final host was waiting for

    async def _drop(self, msg: Msg, why: str) -> None:
        self._bus.counters.inc("server.malformed_messages")
        log.warning("dropped message on %s: %s", msg.subject, why)
        await msg.term()

    async def close_finished(self) -> None:
        """End the streams of hosts that are done, now and whenever there may be more."""
        while True:
            self._wake.clear()
            await self.close_ready()
            with contextlib.suppress(TimeoutError):
                await bounded(self._wake.wait(), CLOSE_EVERY)

    async def close_ready(self) -> int:
        """End every stream whose host is final and whose output is in (or given up on)."""
        now = self._clock.now()
        closed = 0
        for host in await self.store.open_hosts():
            missing = max(0, host.expected - host.stored)
            waiting = missing or host.awaiting_answer
            if waiting and now - host.final_since < self._missing_grace:
                continue
            await self.store.close(host.action_id, host.host, _summary(host, missing), now)
            closed += 1
            if missing:
                log.warning(
                    "action %s: %d output chunks of %s never arrived",
                    host.action_id,
                    missing,
                    host.host,
                )
        if closed:
            self.changes.notify()
        return closed


def _summary(host: OpenHost, missing: int) -> bytes:
    """What the end of a host's stream says: how it ended, and whether its output is whole."""
    return json.dumps(
        {
            "host": host.host,
            "outcome": host.outcome.value,
            "exit_code": host.exit_code,
            "chunks": host.expected,
            "missing": missing,
        }
    ).encode()
