"""Following a durable pull consumer: one life of the fetch loop, made anew by its loop after
every reconnect (a consumer's subscription does not survive every server restart)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from drover.bus.connection import Bus

Handle = Callable[[Msg], Awaitable[None]]


async def consume(
    bus: Bus,
    *,
    stream: str,
    subject: str,
    durable: str,
    config: ConsumerConfig,
    handle: Handle,
    batch: int,
    stopping: Callable[[], bool] = lambda: False,
    poll: float = 2.0,
    caught_up: Callable[[], None] | None = None,
) -> None:
    """Fetch and `handle` messages one at a time until a reconnect or `stopping()`.

    A message left unhandled because of `stopping()` is not acked, so JetStream delivers it
    again to the next life of this consumer. `caught_up`, when given, is called whenever this
    life has handled everything that was waiting for it: at once if nothing was, after the
    last message that was, and after every fetch that found nothing.
    """
    generation = bus.generation
    psub = await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    try:
        if caught_up is not None and (await psub.consumer_info()).num_pending == 0:
            caught_up()
        while bus.generation == generation and not stopping():
            try:
                messages = await psub.fetch(batch=batch, timeout=poll)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from inside fetch
                if caught_up is not None:
                    caught_up()
                continue
            for msg in messages:
                if stopping():
                    return
                await handle(msg)
                if caught_up is not None and msg.metadata.num_pending == 0:
                    caught_up()
    finally:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await psub.unsubscribe()
