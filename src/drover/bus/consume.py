"""Following a durable pull consumer: one life of the fetch loop, made anew by its loop after
every reconnect (a consumer's subscription does not survive every server restart)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from drover.bus.connection import Bus
from drover.bus.errors import ConsumerMissing

Handle = Callable[[Msg], Awaitable[None]]


async def consume(
    bus: Bus,
    *,
    stream: str,
    subject: str,
    durable: str,
    config: ConsumerConfig | None = None,
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

    With a `config`, the consumer is made if missing; without, it must exist (an agent's are
    made by the server): ConsumerMissing otherwise.
    """
    generation = bus.generation
    if config is not None:
        psub = await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    else:
        try:
            await bus.js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            raise ConsumerMissing(
                f"consumer {durable} of {stream} is not there; the server makes it when the "
                "host enrolls, and again when it starts"
            ) from None
        psub = await bus.js.pull_subscribe_bind(durable=durable, stream=stream)
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
