"""A TCP proxy on loopback between NATS clients and one nats-server, which a test can blackhole
and heal: the half-open link that hurts most, since no side is told anything.

Blackholed, the proxy keeps every connection open and passes nothing either way: what the
peers send stays in their socket buffers (the proxy stops reading, so they fill up as a real
link's would), and a new connection is accepted but never connected through. Only unanswered
pings tell a client.

Healed, it passes traffic again, and what becomes of the connections that lived through the
cut is the caller's choice:

- `stale="reset"`: they are reset, what they held is dropped. So a long cut ends: the kernels
  at both ends gave up retransmitting long before (a closed socket's within a couple of
  minutes), and the peer that no longer knows the connection answers with a reset.
- `stale="resume"`: they flow again from where they stopped, as TCP does after a short cut:
  even a connection its client already gave up on delivers what it had sent, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Gone at once, buffers and all (abort: no flush, no orderly close)."""
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()
        if self.task is not None:
            self.task.cancel()


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._cut: set[_Connection] = set()  # those that lived through the current cut
        self.port = 0
        self.accepted = 0  # connections accepted, also while blackholed
        self.reset = 0  # connections reset by a heal

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def blackhole(self) -> None:
        self._open.clear()
        self._cut = set(self._connections)

    def heal(self, stale: Literal["reset", "resume"] = "reset") -> None:
        if stale == "reset":
            for connection in self._cut:
                connection.reset()
                self.reset += 1
        self._cut = set()
        self._open.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.reset()
        tasks = [c.task for c in self._connections if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        connection = _Connection(client_out, task=asyncio.current_task())
        self._connections.add(connection)
        if not self._open.is_set():
            self._cut.add(connection)
        try:
            await self._open.wait()  # accepted, and held there while blackholed
            try:
                server_in, server_out = await asyncio.open_connection(*self._upstream)
            except OSError:
                return
            connection.server = server_out
            await asyncio.gather(
                self._pump(client_in, server_out), self._pump(server_in, client_out)
            )
        except asyncio.CancelledError:
            pass  # reset by a heal, or the proxy closes: the transports are gone already
        finally:
            for writer in (client_out, connection.server):
                if writer is not None:
                    writer.close()
            self._connections.discard(connection)
            self._cut.discard(connection)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy until the source ends, then close the sink: the pump the other way then finds
        its source gone, and the whole connection ends."""
        try:
            while data := await source.read(65536):
                await self._open.wait()  # holds what it read; reads no more meanwhile
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
