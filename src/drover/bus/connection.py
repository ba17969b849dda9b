"""A NATS connection set up for networks that drop.

- `url` may name several servers, the nodes of one cluster, separated by commas: any one of
  them that answers will do, at the first connect and at every reconnect;
- the first connect is retried (with jittered backoff) until it succeeds or the caller gives up;
- reconnects go on forever, each after a jittered, growing delay, so ten thousand agents that
  lost the same server do not come back in the same millisecond; however long the cluster is
  down, a client tries one of its servers at least every `reconnect_cap` seconds;
- should nats-py close the connection for good all the same (it does on some errors a server
  sends, e.g. an authorization error while connected), the Bus connects anew by itself: a
  drover process never needs a restart to get its bus back;
- pings every `ping_interval` seconds (≤ 20 s) find a dead link quickly;
- `generation` grows on every reconnect, so watch loops know to recreate their watchers;
- with an `identity` it authenticates with a user JWT (bus/trust), with a `tls_ca` it speaks
  TLS and trusts only that CA, and its replies come to its own `inbox_prefix`, the only inbox
  its permissions let it hear.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client, Server
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from drover.bus import subjects
from drover.bus.messages import Message, encode
from drover.bus.trust.credentials import BusIdentity
from drover.ops.cancels import bounded, checkpoint
from drover.ops.counters import Counters
from drover.ops.loops import Backoff
from drover.ops.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusSettings:
    # One server's URL, or several separated by commas: nats://a:4222,nats://b:4222,...
    url: str = "nats://127.0.0.1:4222"
    name: str = "drover"
    connect_timeout: float = 5.0
    ping_interval: int = 15
    max_outstanding_pings: int = 2
    request_timeout: float = 5.0
    reconnect_base: float = 0.25
    reconnect_cap: float = 8.0
    identity: BusIdentity | None = None
    tls_ca: Path | None = None  # None: the system's trusted CAs (when the URL is tls://)
    inbox_prefix: str = "_INBOX"
    # The JetStream domain to reach (an agent's: the hub's, whether it connects to the hub or
    # to an outpost); None: the JetStream of the nats-server it connects to.
    jetstream_domain: str | None = None

    @property
    def servers(self) -> list[str]:
        """The URLs in `url`, as nats-py takes them."""
        return split_urls(self.url)


def split_urls(urls: str) -> list[str]:
    """`nats://a:4222, nats://b:4222` → ["nats://a:4222", "nats://b:4222"]."""
    return [url.strip() for url in urls.split(",") if url.strip()]


class Bus:
    """The NATS client and JetStream context, plus the bookkeeping our loops need."""

    def __init__(
        self, settings: BusSettings, counters: Counters, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.counters = counters
        self.metrics = metrics or Metrics("client", counters)
        self.metrics.bus_connected = lambda: self.is_connected
        self.generation = 0
        self._generation_over = asyncio.Event()  # set when `generation` grows, then made anew
        self._rng = random.Random()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._closing = False
        # Connecting anew after nats-py closed the connection by itself (see _on_closed).
        self._reopening: asyncio.Task[None] | None = None

    @property
    def nc(self) -> Client:
        assert self._nc is not None, "Bus.connect() first"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "Bus.connect() first"
        return self._js

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def dead_link_after(self) -> float:
        """Seconds until a link gone silent is found dead: the pings it may leave unanswered."""
        return float(self.settings.ping_interval * self.settings.max_outstanding_pings)

    @property
    def is_open(self) -> bool:
        """Connected once and not closed: connected, or reconnecting by itself."""
        return self._reopening is not None or (self._nc is not None and not self._nc.is_closed)

    def past(self, generation: int) -> asyncio.Event:
        """Set once the bus is past `generation`: it reconnected, or connected anew. What
        waits on this connection (a long fetch) can stop waiting: what it asked for was lost."""
        if generation != self.generation:
            over = asyncio.Event()
            over.set()
            return over
        return self._generation_over

    def _next_generation(self) -> None:
        self.generation += 1
        self._generation_over.set()
        self._generation_over = asyncio.Event()

    async def connect(self) -> None:
        """Connect, retrying the first connect with backoff until it succeeds."""
        reopening = self._reopening
        if reopening is not None and reopening is not asyncio.current_task():
            await asyncio.shield(reopening)  # already under way, by itself
            return
        backoff = Backoff(self.settings.reconnect_base, self.settings.reconnect_cap, self._rng)
        while True:
            try:
                self._nc = await nats.connect(**self._options())
            except (OSError, TimeoutError, nats.errors.Error) as err:
                self.counters.inc("bus.connect_failures")
                delay = backoff.next_delay()
                log.info("NATS at %s not reachable (%r); retrying", self.settings.url, err)
                checkpoint()  # the cancel a NATS call this round may have swallowed
                await asyncio.sleep(delay)
                continue
            self._js = self._nc.jetstream(
                timeout=self.settings.request_timeout, domain=self.settings.jetstream_domain
            )
            log.info("connected to NATS at %s", self.settings.url)
            return

    async def close(self) -> None:
        """Drain (deliver what is buffered), bounded; an unreachable server is no error here."""
        self._closing = True
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
        if self._nc is None or self._nc.is_closed:
            return
        try:
            await bounded(self._nc.drain(), 5)
        except Exception:
            with contextlib.suppress(Exception):
                await bounded(self._nc.close(), 5)

    async def kv(self, bucket: str) -> KeyValue:
        """A bucket of ours (bus/topology made it), without asking the server about it first:
        an agent may not read stream information. Through a JetStream domain, only for
        writing: its keys are written on subjects of the domain's API (nats-py 2.16 writes
        them on the plain ones, which do not cross a leaf node)."""
        return KeyValue(
            name=bucket,
            stream=subjects.KV_STREAM_PREFIX + bucket,
            pre=subjects.kv_subject(bucket, "", self.settings.jetstream_domain),
            js=self.js,
            direct=False,
        )

    async def publish(
        self,
        subject: str,
        message: Message | bytes,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish to a stream and wait for the server to store it."""
        headers = dict(headers or {})
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        payload = message if isinstance(message, bytes) else encode(message)
        try:
            await self.js.publish(
                subject, payload, timeout=self.settings.request_timeout, headers=headers or None
            )
        except (nats.errors.Error, TimeoutError):
            self.metrics.bus_errors.labels("publish").inc()
            raise
        self.metrics.messages_published.labels(subjects.kind_of(subject)).inc()

    async def announce(self, subject: str, payload: bytes) -> None:
        """Publish without waiting for a store (core NATS, for what a stream may miss)."""
        await self.nc.publish(subject, payload)
        self.metrics.messages_published.labels(subjects.kind_of(subject)).inc()

    async def put(self, bucket: str, key: str, value: bytes) -> None:
        """Write a key of one of our buckets, counted like a publish."""
        try:
            await (await self.kv(bucket)).put(key, value)
        except (nats.errors.Error, TimeoutError):
            self.metrics.bus_errors.labels("put").inc()
            raise
        self.metrics.messages_published.labels(bucket).inc()

    def _options(self) -> dict[str, Any]:
        return {
            "servers": self.settings.servers,
            "name": self.settings.name,
            "connect_timeout": self.settings.connect_timeout,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "ping_interval": self.settings.ping_interval,
            "max_outstanding_pings": self.settings.max_outstanding_pings,
            "reconnect_to_server_handler": self._pick_server,
            "inbox_prefix": self.settings.inbox_prefix,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            **self._security_options(),
        }

    def _security_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        identity = self.settings.identity
        if identity is not None:
            options["user_jwt_cb"] = lambda: identity.user_jwt().encode()
            options["signature_cb"] = lambda nonce: base64.b64encode(
                identity.key.sign(nonce.encode())
            )
        tls_urls = any(url.startswith("tls://") for url in self.settings.servers)
        if tls_urls or self.settings.tls_ca is not None:
            # With a CA of its own, that CA alone (and not the ~150 of the system: they would
            # cost every agent a megabyte and trust more than it should).
            ca = str(self.settings.tls_ca) if self.settings.tls_ca is not None else None
            options["tls"] = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        return options

    def _pick_server(self, servers: list[Server], _info: dict[str, Any]) -> tuple[Server, float]:
        server = self._rng.choice(servers)
        ceiling = min(
            self.settings.reconnect_cap,
            self.settings.reconnect_base * 2 ** min(server.reconnects, 8),
        )
        return server, self._rng.uniform(ceiling / 2, ceiling)

    async def _on_error(self, err: Exception) -> None:
        self.counters.inc("bus.errors")
        if "permissions violation" in str(err).lower() or "authorization" in str(err).lower():
            # Refused by nats-server: a bug of ours or a credential gone bad; never quiet.
            self.counters.inc("bus.refused")
            log.warning("NATS refused %s: %s", self.settings.name, err)
            return
        log.debug("NATS error: %r", err)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self.counters.inc("bus.disconnects")
        log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._next_generation()
        self.counters.inc("bus.reconnects")
        log.info("reconnected to NATS")

    async def _on_closed(self) -> None:
        """nats-py gave up on the connection (it never does for a server that is only down:
        it reconnects forever; it does on some errors a server sends, e.g. an authorization
        error while connected). Every loop of ours would fail from now on, on the closed
        client, until the process restarts: connect anew instead. The new connection is a new
        generation, so the loops make their subscriptions and watches again on it."""
        if self._closing or self._reopening is not None:
            return
        self.counters.inc("bus.reopens")
        log.warning("the NATS client closed its connection (%r); connecting anew", self._nc_error())
        # Owned by the Bus: close() cancels it; it ends once connected.
        self._reopening = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        try:
            await self.connect()
        finally:
            self._reopening = None
        self._next_generation()
        log.info("connected to NATS anew")

    def _nc_error(self) -> object:
        return self._nc.last_error if self._nc is not None else None
