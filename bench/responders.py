"""The raw ceiling of a fan-out: N nats-py clients, each with a connection of its own (TLS and a
JWT, as an agent's), that answer every message on one subject; spread over processes as
`drover sim` spreads its hosts.

    python -m bench.responders SETTINGS_JSON

One process of them: it prints `ready` once every client has subscribed and flushed, and ends
when its standard input does. SETTINGS_JSON: {"url", "ca", "jwt", "seed", "count", "subject"}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from drover.bus.trust.keys import KeyPair


async def responder(settings: dict[str, Any], key: KeyPair) -> Client:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings["ca"])
    jwt = settings["jwt"].encode()
    client = await nats.connect(
        settings["url"],
        tls=context,
        user_jwt_cb=lambda: jwt,
        signature_cb=lambda nonce: base64.b64encode(key.sign(nonce.encode())),
        connect_timeout=30,
        max_reconnect_attempts=-1,
    )

    async def answer(msg: Msg) -> None:
        await client.publish(msg.reply, b"pong")

    await client.subscribe(settings["subject"], cb=answer)
    await client.flush()
    return client


async def serve(settings: dict[str, Any]) -> None:
    key = KeyPair(settings["seed"].encode())
    gate = asyncio.Semaphore(64)

    async def one() -> Client:
        async with gate:
            return await responder(settings, key)

    clients = await asyncio.gather(*(one() for _ in range(settings["count"])))
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    for client in clients:
        await client.close()


def main() -> None:
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
