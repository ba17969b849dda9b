"""Following a durable pull consumer: one life of the fetch loop, made anew by its loop after
every reconnect (a consumer's subscription does not survive every server restart), and after a
stall: work waiting that the fetches do not bring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from drover.bus.connection import Bus
from drover.bus.errors import ConsumerMissing
from drover.ops.cancels import checkpoint, stop_requested

log = logging.getLogger(__name__)

Handle = Callable[[Msg], Awaitable[None]]
HandleBatch = Callable[[list[Msg]], Awaitable[None]]

# How long a fetch waits for a message, for consumers that only wait (each host's own): the
# waiting is nats-server's (a pull request it holds), and a message that comes is delivered at
# once, so a long wait costs nothing; short ones would cost ten thousand agents a request and
# an answer each, every few seconds, for nothing. A reconnect ends the wait at once. No fetch
# waits longer than its bus takes to find a silent link dead (Bus.dead_link_after): a request
# nats-server still holds for a link gone silent takes the next message into the void, where
# it waits out its ack wait; for no longer than the link was not yet known dead, as before.
LONG_POLL = 30.0
# Their stall check: a look at the consumer (a request) after every other empty fetch, not every
# one; a stall is found within two looks (2–4 minutes), where actions wait that long.
LONG_POLL_STALL_AFTER = 2 * LONG_POLL
LET_GO_BOUND = 2  # seconds for nats-server to confirm a life's subscription is gone

# Fetches that bring nothing this long, while the consumer says messages wait: a stall. The
# tool drover learns from once stopped taking messages for good this way, after a fetch error
# during a NATS patch; recreating the subscription is what brings them again.
STALL_AFTER = 30.0


async def consume(
    bus: Bus,
    *,
    stream: str,
    subject: str,
    durable: str,
    config: ConsumerConfig | None = None,
    handle: Handle | None = None,
    handle_batch: HandleBatch | None = None,
    batch: int,
    stopping: Callable[[], bool] = lambda: False,
    poll: float = 2.0,
    caught_up: Callable[[], None] = lambda: None,
    stall_after: float = STALL_AFTER,
) -> None:
    """Fetch and `handle` messages one at a time until a reconnect or `stopping()`; or
    `handle_batch` each batch fetched, whole (it acks each message it is done with).

    A message left unhandled because of `stopping()` is handed back (nak), so JetStream
    delivers it again at once, to the next life of this consumer. `caught_up`, when given, is
    called whenever this life has handled everything that was waiting for it: at once if
    nothing was, after the last message that was, and after every fetch that found nothing.

    With a `config`, the consumer is made if missing; without, it must exist (an agent's are
    made by the server): ConsumerMissing otherwise. Returns after a stall (`stall_after`
    seconds of empty fetches while messages wait), so its loop makes a new subscription.
    """
    _one_of(handle, handle_batch)
    generation = bus.generation
    poll = min(poll, bus.dead_link_after)
    psub = await _subscribe(bus, stream, subject, durable, config)
    watch = _StallWatch(bus, psub, durable, stall_after)
    try:
        if await watch.start() == 0:
            caught_up()
        while bus.generation == generation and not stopping():
            if not bus.is_connected:
                # A fetch sent now would wait in nats-py's buffer, go out on the next
                # connection and outlive this life there: the message JetStream delivers to
                # it would reach no one until its ack wait ran out. This life ends with the
                # reconnect; the next asks anew.
                await bus.past(generation).wait()
                break
            try:
                messages = await _fetch(psub, batch, poll, bus.past(generation))
            except nats.errors.Error:
                bus.metrics.bus_errors.labels("fetch").inc()
                raise
            if not messages:
                caught_up()
                if await watch.stalled():
                    return
                continue
            if handle_batch is not None:
                await _whole(messages, handle_batch, watch)
                if messages[-1].metadata.num_pending == 0:
                    caught_up()
            elif handle is not None and not await _each(
                messages, handle, watch, stopping, caught_up
            ):
                return
    finally:
        await _let_go(bus, psub)


def _one_of(handle: Handle | None, handle_batch: HandleBatch | None) -> None:
    if (handle is None) == (handle_batch is None):
        raise TypeError("consume() takes one of handle and handle_batch")


async def _each(
    messages: list[Msg],
    handle: Handle,
    watch: _StallWatch,
    stopping: Callable[[], bool],
    caught_up: Callable[[], None],
) -> bool:
    """Handle them in turn; False if `stopping()` came first (the rest go back)."""
    for index, msg in enumerate(messages):
        if stopping():
            await _hand_back(messages[index:])
            return False
        watch.arrived(msg)
        try:
            await handle(msg)
        except BaseException:  # a stop too: the next life takes them at once
            await _hand_back(messages[index:])
            raise
        watch.took(msg)
        if msg.metadata.num_pending == 0:
            caught_up()
    return True


async def _whole(messages: list[Msg], handle_batch: HandleBatch, watch: _StallWatch) -> None:
    for msg in messages:
        watch.arrived(msg)
    try:
        await handle_batch(messages)
    except BaseException:  # those it acked stay acked; the rest come to the next life at once
        await _hand_back(messages)
        raise
    for msg in messages:
        watch.took(msg)


async def _fetch(
    psub: JetStreamContext.PullSubscription, batch: int, poll: float, reconnected: asyncio.Event
) -> list[Msg]:
    """The next batch, or [] after `poll` seconds without one, or at once when the bus
    reconnects (the request the fetch sent died with the old connection). nats-py's fetch may
    swallow the cancel that stops this loop (ops/cancels.py): it is raised here, and what that
    fetch brought goes back to the consumer at once."""
    fetching = asyncio.ensure_future(psub.fetch(batch=batch, timeout=poll))
    woken = asyncio.ensure_future(reconnected.wait())
    try:
        await asyncio.wait((fetching, woken), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _abandon(fetching)
        raise
    finally:
        woken.cancel()
    if not fetching.done():
        await _abandon(fetching)
        checkpoint()
        return []
    try:
        messages = fetching.result()
    except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from inside fetch
        checkpoint()
        return []
    if stop_requested():
        await _hand_back(messages)
        raise asyncio.CancelledError
    return messages


async def _abandon(fetching: asyncio.Future[list[Msg]]) -> None:
    """Cancel a fetch; what it brought all the same (a cancel it swallowed) goes back."""
    fetching.cancel()
    try:
        messages = await fetching
    except (asyncio.CancelledError, TimeoutError, nats.errors.Error):
        return
    await _hand_back(messages)


async def _let_go(bus: Bus, psub: JetStreamContext.PullSubscription) -> None:
    """End this life's subscription with nothing lost. nats-server is told first, and a round
    trip awaited: what it delivered before it stopped (above all to a fetch request of this
    life it still held, such as one sent before a reconnect and alive for LONG_POLL) is here
    by then, and goes back to the consumer with the rest. Unsubscribed at once, nats-py would
    drop what arrived after, and it would come again only after its ack wait."""
    sid = psub._sub._id  # nats-py offers no other way to tell the server before forgetting it
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        if bus.is_connected:
            await bus.nc._send_unsubscribe(sid)
            await bus.nc.flush(timeout=LET_GO_BOUND)
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        await psub.unsubscribe()
    await _hand_back(_left_in(psub))


def _left_in(psub: JetStreamContext.PullSubscription) -> list[Msg]:
    """What JetStream delivered to this subscription that no fetch took: above all after a
    reconnect, when nats-py sends again on the new connection the fetch requests it buffered
    while it was away, and JetStream answers them as this life ends. Unsubscribed, nats-py
    would drop them, and they would wait out their ack wait."""
    queue = psub._sub._pending_queue  # nats-py keeps them here, and offers no other way
    left = []
    while not queue.empty():
        msg = queue.get_nowait()
        if not JetStreamContext.is_status_msg(msg):  # "no messages", "request timeout"
            left.append(msg)
    return left


async def _hand_back(messages: list[Msg]) -> None:
    """Messages delivered to this life that it will not handle (the one whose handling failed
    and those fetched with it, or those left in the subscription) go back to the consumer now,
    for the next life to take after its backoff: left unacknowledged, they would come again
    only when their ack wait has passed (a minute for an action). A handler that handed one
    back with a delay of its own may see it sooner, which the loop's backoff bounds. Best
    effort: where the nak is lost too, the ack wait remains."""
    for msg in messages:
        if msg.is_acked:  # a batch's handler acks each message it is done with
            continue
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await msg.nak()


async def _subscribe(
    bus: Bus, stream: str, subject: str, durable: str, config: ConsumerConfig | None
) -> JetStreamContext.PullSubscription:
    if config is not None:
        return await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    try:
        await bus.js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        raise ConsumerMissing(
            f"consumer {durable} of {stream} is not there; the server makes it when the "
            "host enrolls, and again when it starts"
        ) from None
    return await bus.js.pull_subscribe_bind(durable=durable, stream=stream)


class StallCheck:
    """Tells a stall from a quiet spell: `stall_after` seconds after the last message, `behind`
    is asked what the consumer holds for this subscription (a reason, or None when nothing);
    a reason at two looks in a row is a stall. A message that arrives between an empty wait
    and a look is taken in between, and clears the suspicion."""

    def __init__(self, stall_after: float, behind: Callable[[], Awaitable[str | None]]) -> None:
        self._stall_after = stall_after
        self._behind = behind
        self._loop = asyncio.get_running_loop()
        self._idle_since = self._loop.time()
        self._suspect = False

    def took(self) -> None:
        self._idle_since = self._loop.time()
        self._suspect = False

    async def stalled(self) -> str | None:
        """After an empty wait: why this is a stall, or None."""
        if self._loop.time() - self._idle_since < self._stall_after:
            return None
        why = await self._behind()
        if why is None:
            self.took()  # quiet: the next look is a whole stall_after away
            return None
        if not self._suspect:
            self._suspect = True  # look again after the next empty wait
            return None
        return why


class _StallWatch:
    """A pull subscription's stall check. Its consumer holds something for it when

    - messages were delivered past the last one this subscription took (or saw delivered at its
      start), and not all of them are acknowledged: they went somewhere and were not handled
      (another server sharing the consumer would have acknowledged them);
    - or messages wait undelivered, none is out unacknowledged, and still none comes.

    Then the subscription is recreated; messages delivered to a deaf one come again once their
    ack wait runs out.
    """

    def __init__(
        self, bus: Bus, psub: JetStreamContext.PullSubscription, durable: str, stall_after: float
    ) -> None:
        self._bus = bus
        self._psub = psub
        self._durable = durable
        self._check = StallCheck(stall_after, self._behind)
        self._mark = 0  # consumer sequence: delivered as of our last take or quiet look

    async def start(self) -> int:
        """Note where the consumer stands; the messages waiting undelivered."""
        info = await self._psub.consumer_info()
        self._mark = (info.delivered.consumer_seq or 0) if info.delivered else 0
        pending = info.num_pending or 0
        self._bus.metrics.consumer_pending.labels(self._durable).set(pending)
        return pending

    def arrived(self, msg: Msg) -> None:
        """How old the message is as it arrives (not after its handling, which may be long)."""
        age = time.time() - msg.metadata.timestamp.timestamp()
        self._bus.metrics.consumer_lag.labels(self._durable).set(max(0.0, age))

    def took(self, msg: Msg) -> None:
        meta = msg.metadata
        metrics = self._bus.metrics
        metrics.messages_received.labels(self._durable).inc()
        metrics.consumer_pending.labels(self._durable).set(meta.num_pending)
        self._mark = max(self._mark, meta.sequence.consumer or 0)
        self._check.took()

    async def stalled(self) -> bool:
        """After an empty fetch: whether this is a stall (logged and counted)."""
        why = await self._check.stalled()
        if why is None:
            return False
        self._bus.metrics.consumer_stalls.labels(self._durable).inc()
        log.warning("consumer %s stalled: %s; recreating its subscription", self._durable, why)
        return True

    async def _behind(self) -> str | None:
        info = await self._psub.consumer_info()
        pending = info.num_pending or 0
        out = info.num_ack_pending or 0
        delivered = (info.delivered.consumer_seq or 0) if info.delivered else 0
        acked = (info.ack_floor.consumer_seq or 0) if info.ack_floor else 0
        self._bus.metrics.consumer_pending.labels(self._durable).set(pending)
        if delivered > self._mark and acked < delivered:
            return f"{delivered - self._mark} messages delivered to it and not acknowledged"
        if pending > 0 and out == 0 and delivered == self._mark:
            return f"{pending} messages wait and none is delivered"
        self._mark = delivered
        return None
