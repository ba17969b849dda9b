"""A running command's output on its way to the server: coalesced into chunks, sent in order.

The runner `feed`s bytes as the process writes them. Every `flush_every` seconds, or as soon as
`chunk_bytes` have gathered, what has gathered goes out as the next OutputChunk on this host's
own subject, with a de-duplication id per (action, host, seq). One chunk at a time: a chunk is
published only once JetStream has stored the one before, so what reaches the server is always
chunks 1..n without a gap, and the result can say n. A publish that fails is retried with
backoff (the same id: a retry of a chunk that did get stored is dropped as a duplicate).

Only `limit` bytes are kept; the rest is counted, and a last line says how much was left out.
So what waits here for a slow or absent bus is bounded too. A chunk never ends inside a UTF-8
character when the output is UTF-8, so each chunk can be shown as text on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.messages import OutputChunk
from drover.ops.cancels import bounded, checkpoint
from drover.ops.loops import Backoff

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 1024
FLUSH_EVERY = 0.2
TAIL_BYTES = 4096  # of the output, kept for the result


class OutputPublisher:
    def __init__(
        self,
        bus: Bus,
        host: str,
        action_id: str,
        limit: int,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        self._bus = bus
        self._host = host
        self._action_id = action_id
        self._limit = limit
        self._chunk_bytes = chunk_bytes
        self._flush_every = flush_every
        self._pending = bytearray()  # kept, not yet sent
        self._kept = 0
        self.written = 0  # every byte the process wrote
        self.sent = 0  # chunks JetStream has stored
        self.tail = b""  # the last TAIL_BYTES of the output, for the result
        self._full = asyncio.Event()
        self._closing = False

    @property
    def dropped(self) -> int:
        """Bytes written beyond the limit: counted, never sent."""
        return self.written - self._kept

    @property
    def unsent(self) -> int:
        """Bytes kept but not (yet) stored by JetStream."""
        return len(self._pending)

    def feed(self, data: bytes) -> None:
        self.written += len(data)
        self.tail = (self.tail + data)[-TAIL_BYTES:]
        take = data[: max(0, self._limit - self._kept)]
        self._kept += len(take)
        self._pending += take
        if len(self._pending) >= self._chunk_bytes:
            self._full.set()

    async def run(self) -> None:
        """Send chunks until `close` and everything kept is sent (or the task is cancelled)."""
        backoff = Backoff(0.2, 5.0)
        while True:
            if not self._closing and len(self._pending) < self._chunk_bytes:
                with contextlib.suppress(TimeoutError):
                    await bounded(self._full.wait(), self._flush_every)
                self._full.clear()
            closing = self._closing  # read before sending: what is pending now is all there is
            while chunk := self._next_chunk(whole=closing):
                try:
                    await self._publish(chunk)
                except (nats.errors.Error, TimeoutError, OSError) as err:
                    self._bus.counters.inc("agent.output_publish_failures")
                    log.debug("action %s: output chunk not stored yet: %r", self._action_id, err)
                    checkpoint()  # the cancel a NATS call this round may have swallowed
                    await asyncio.sleep(backoff.next_delay())
                    break
                backoff.reset()
                del self._pending[: len(chunk)]
                self.sent += 1
            if closing and not self._pending:
                return

    def close(self) -> None:
        """No more output: send what is left, and a line for what was left out."""
        if self._closing:
            return
        if self.dropped:
            self._pending += truncation_note(self._limit, self.dropped)
        self._closing = True
        self._full.set()

    def _next_chunk(self, whole: bool) -> bytes:
        size = min(len(self._pending), self._chunk_bytes)
        if size == 0:
            return b""
        cut = utf8_boundary(self._pending, size)
        if cut == 0 and (whole or size < len(self._pending)):
            cut = size  # nothing to wait for: a character cut short stays cut short
        return bytes(self._pending[:cut])

    async def _publish(self, data: bytes) -> None:
        seq = self.sent + 1
        await self._bus.publish(
            subjects.output_subject(self._host),
            OutputChunk(action_id=self._action_id, host=self._host, seq=seq, data=data),
        )


def truncation_note(limit: int, dropped: int) -> bytes:
    return (
        f"\n[drover: output truncated: only the first {limit} bytes are kept; "
        f"{dropped} more bytes were not]\n"
    ).encode()


def utf8_boundary(data: bytes | bytearray, end: int) -> int:
    """The largest cut at or before `end` that does not split a UTF-8 character: when one of
    the last three bytes before `end` starts a character longer than what precedes `end`, the
    cut moves before it. Bytes that are not UTF-8 are cut anywhere."""
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte < 0x80:
            return end  # ASCII: no character is open
        if byte >= 0xC0:  # the lead byte of a character
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end - back if length > back else end
    return end  # only continuation bytes: not UTF-8 we could keep whole
