"""Errors thrown from inside the NATS client, as nats-py raises them, into every call drover
makes through it: fetches, KV watches, JetStream publishes (KV writes among them), core
publishes (acks, announcements, the requests under every JetStream call) and JetStream API
requests.

Each site is a nats-py method patched on its class, so every drover client in the process
(server and agents) goes through it. While the injector is `on`, a call fails with probability
`rate` (from a seeded generator); the error is the one of the site's catalogue raised least so
far, so that even a short run raises every class of every catalogue. A JetStream publish may
also fail *after* the real call: the server stored the message and the answer was lost, the
case that tempts a caller into sending it twice.

The catalogues come from nats-py's own source (nats/errors.py, nats/js/errors.py and the
methods named below): what each call raises there, plus what a dropped link surfaces as
(a stale or closed connection, a socket error, asyncio's own timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.manager import JetStreamManager

ErrorFactory = Callable[[], BaseException]


def _api(kind: type[nats.js.errors.APIError], code: int, description: str) -> ErrorFactory:
    return lambda: kind(code=code, description=description)


def _slow_consumer() -> BaseException:
    return nats.errors.SlowConsumerError(subject="drover.chaos", reply="", sid=0, sub=None)  # type: ignore[arg-type]


# What a connection that breaks under a call surfaces as, wherever it happens.
_LINK = (
    nats.errors.ConnectionClosedError,  # aio/client.py: the connection was closed
    nats.errors.StaleConnectionError,  # pings unanswered: the client drops the link
    nats.errors.UnexpectedEOF,  # the server hung up (a StaleConnectionError)
    lambda: ConnectionResetError(104, "Connection reset by peer"),  # an OSError
    asyncio.TimeoutError,  # asyncio.wait_for inside the client (TimeoutError on 3.11)
)

# nats/aio/client.py Client.publish: closed, draining, buffer full while reconnecting, too big.
CORE_PUBLISH: tuple[ErrorFactory, ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.MaxPayloadError,
)

# nats/js/client.py JetStreamContext.publish: Client.request's errors (timeout, no responders,
# reconnecting, the core publish's), then the stream's refusal (APIError.from_error by code).
JS_PUBLISH: tuple[ErrorFactory, ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.FlushTimeoutError,
    _api(nats.js.errors.ServiceUnavailableError, 503, "JetStream not ready"),
    _api(nats.js.errors.ServerError, 500, "raft: leadership lost"),
    _api(nats.js.errors.NotFoundError, 404, "stream not found"),
    _api(nats.js.errors.BadRequestError, 400, "wrong last sequence"),
    _api(nats.js.errors.APIError, 429, "too many requests"),
    *_LINK,
)

# nats/js/client.py PullSubscription.fetch (_fetch_one, _fetch_n, Subscription.next_msg):
# timeouts of three kinds, a status message turned into an APIError (409 consumer deleted,
# 503), the next-request publish failing, the subscription's queue overflowing.
FETCH: tuple[ErrorFactory, ...] = (
    nats.errors.TimeoutError,
    nats.js.errors.FetchTimeoutError,
    _api(nats.js.errors.APIError, 409, "Consumer Deleted"),
    _api(nats.js.errors.NotFoundError, 404, "consumer not found"),
    _api(nats.js.errors.BadRequestError, 400, "Exceeded MaxRequestBatch"),
    _api(nats.js.errors.ServiceUnavailableError, 503, "No Responders"),
    _api(nats.js.errors.ServerError, 500, "server error"),
    lambda: nats.js.errors.Error("nats: consumer is already bound to a subscription"),
    nats.errors.BadSubscriptionError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    _slow_consumer,
    *_LINK,
)

# nats/js/kv.py KeyWatcher.updates: its own timeout, or what breaks the watch's subscription.
WATCH_UPDATES: tuple[ErrorFactory, ...] = (
    nats.errors.TimeoutError,
    _slow_consumer,
    lambda: nats.js.errors.Error("nats: watcher stopped"),
    *_LINK,
)

# nats/js/manager.py JetStreamManager._api_request (consumer info, creating a watch's or a
# pull subscription's consumer, stream info): Client.request's errors, then APIError by code.
API_REQUEST: tuple[ErrorFactory, ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    _api(nats.js.errors.ServiceUnavailableError, 503, "JetStream system temporarily unavailable"),
    _api(nats.js.errors.NotFoundError, 404, "consumer not found"),
    _api(nats.js.errors.BadRequestError, 400, "consumer name already in use"),
    _api(nats.js.errors.ServerError, 500, "raft: no quorum"),
    *_LINK,
)


@dataclass(frozen=True)
class Site:
    """One nats-py method, patched on its class, and the errors it may raise."""

    name: str
    owner: type
    method: str
    errors: tuple[ErrorFactory, ...]
    may_fail_after: bool = False  # the call took effect and the answer was lost


# KeyValue.put, create, update and delete all publish through JetStreamContext.publish, and
# every JetStream call, fetches and acks included, sends through Client.publish.
SITES = (
    Site("fetch", JetStreamContext.PullSubscription, "fetch", FETCH),
    Site("watch", KeyValue.KeyWatcher, "updates", WATCH_UPDATES),
    Site("js_publish", JetStreamContext, "publish", JS_PUBLISH, may_fail_after=True),
    Site("core_publish", Client, "publish", CORE_PUBLISH),
    Site("api_request", JetStreamManager, "_api_request", API_REQUEST),
)


def error_classes(sites: tuple[Site, ...] = SITES) -> set[str]:
    """The name of every class the sites raise."""
    return {_name(make()) for site in sites for make in site.errors}


def _name(err: BaseException) -> str:
    kind = type(err)
    return f"{kind.__module__}.{kind.__qualname__}"


class Injector:
    """Patches the sites while installed; injects only while `on`."""

    def __init__(self, seed: int, rate: float, sites: tuple[Site, ...] = SITES) -> None:
        self.rate = rate
        self.on = False
        self._rng = random.Random(seed)
        self._sites = sites
        self.calls: Counter[str] = Counter()  # by site, while on
        self.injected: Counter[str] = Counter()  # by site
        self.raised: Counter[str] = Counter()  # by error class
        self.after_effect = 0  # injected after the call had taken effect

    @contextlib.contextmanager
    def installed(self) -> Iterator[Injector]:
        originals = [(site, site.owner.__dict__[site.method]) for site in self._sites]
        for site, original in originals:
            setattr(site.owner, site.method, self._wrap(site, original))
        try:
            yield self
        finally:
            self.on = False
            for site, original in originals:
                setattr(site.owner, site.method, original)

    def _wrap(self, site: Site, original: Callable[..., Any]) -> Callable[..., Any]:
        async def failing(this: object, *args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return await original(this, *args, **kwargs)
            self.calls[site.name] += 1
            if self._rng.random() >= self.rate:
                return await original(this, *args, **kwargs)
            err = self._pick(site)
            self.injected[site.name] += 1
            self.raised[_name(err)] += 1
            if site.may_fail_after and self._rng.random() < 0.5:
                self.after_effect += 1
                await original(this, *args, **kwargs)
            raise err

        return failing

    def _pick(self, site: Site) -> BaseException:
        """The error of the site's catalogue raised least so far, here or at any site: every
        class comes up as soon as the injections allow."""
        candidates = [make() for make in site.errors]
        return min(candidates, key=lambda err: self.raised[_name(err)])
