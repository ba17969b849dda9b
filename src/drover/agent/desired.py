"""Follows this host's desired state in KV and hands it to the providers.

It reads the key from a consumer of its own that the server made (`desired-<host>`: the current
value first, then every change), as the agent may read no other key of the bucket.

The last desired state is also kept on disk, so an agent that starts while the bus is
unreachable goes on enforcing what it last knew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from nats.aio.msg import Msg

from drover.agent.files import write_atomically
from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.consume import LONG_POLL, LONG_POLL_STALL_AFTER, consume
from drover.bus.errors import MalformedMessage
from drover.bus.messages import DesiredState, decode, encode
from drover.bus.trust import signing

log = logging.getLogger(__name__)

Apply = Callable[[DesiredState], Awaitable[None]]


class DesiredStateFollower:
    def __init__(self, host: str, bus: Bus, cache: Path, apply: Apply, *, signer: str) -> None:
        self.host = host
        self._signer = signer  # the server's public key: it signs every desired state
        self._bus = bus
        self._cache = cache
        self._apply = apply
        self.current: DesiredState | None = None

    async def load_cached(self) -> None:
        try:
            data = self._cache.read_bytes()
        except FileNotFoundError:
            return
        try:
            desired = decode(DesiredState, str(self._cache), data)
        except MalformedMessage as err:
            log.warning("ignoring cached desired state: %s", err)
            return
        log.info("enforcing cached desired state, revision %s", desired.revision)
        await self._take(desired, save=False)

    async def follow(self) -> None:
        """One life of the consumer's fetch loop (see bus.consume)."""
        await consume(
            self._bus,
            stream=subjects.DESIRED_STREAM,
            subject=subjects.kv_subject(subjects.DESIRED_BUCKET, subjects.desired_key(self.host)),
            durable=subjects.agent_desired_consumer(self.host),
            handle=self._handle,
            batch=1,
            poll=LONG_POLL,
            stall_after=LONG_POLL_STALL_AFTER,
        )

    async def _handle(self, msg: Msg) -> None:
        # Acked once applied: one that failed comes again (and the next change replaces it).
        if msg.data and (refused := signing.refusal(msg.headers, msg.data, self._signer)):
            self._bus.counters.inc("agent.refused_desired")
            log.warning("refused a desired state on %s: %s", msg.subject, refused)
        else:
            await self._receive(msg.subject, msg.data or None)
        await msg.ack()

    async def _receive(self, key: str, value: bytes | None) -> None:
        if value is None:
            return  # deleted: keep enforcing what we last knew
        try:
            desired = decode(DesiredState, key, value)
        except MalformedMessage as err:
            self._bus.counters.inc("agent.malformed_messages")
            log.warning("dropped: %s", err)
            return
        if desired.host != self.host:
            self._bus.counters.inc("agent.foreign_desired")
            log.warning("refused a desired state for host %s", desired.host)
            return
        if _older(desired, self.current):
            self._bus.counters.inc("agent.refused_desired")
            log.warning(
                "refused a desired state issued at %s: the one in force is newer (%s)",
                desired.issued_at,
                self.current.issued_at if self.current else None,
            )
            return
        await self._take(desired, save=True)

    async def _take(self, desired: DesiredState, *, save: bool) -> None:
        if self.current is not None and _same(self.current, desired):
            self.current = desired
            return
        await self._apply(desired)
        self.current = desired  # only now: a failed apply is tried again with the next update
        if save:
            await asyncio.to_thread(write_atomically, self._cache, encode(desired))


def _older(desired: DesiredState, current: DesiredState | None) -> bool:
    if current is None or current.issued_at is None:
        return False
    return desired.issued_at is None or desired.issued_at < current.issued_at


def _same(a: DesiredState, b: DesiredState) -> bool:
    """The same state, whenever each was issued."""
    return a.model_copy(update={"issued_at": None}) == b.model_copy(update={"issued_at": None})
