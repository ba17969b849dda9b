"""A load balancer in front of several drover servers, as a TCP balancer runs one: new
connections go round robin to the backends whose `GET /healthz` answered 200 at the last check.
With `redispatch` (HAProxy's `option redispatch`), a backend that refuses a connection is
skipped for the next; without (as Kubernetes' kube-proxy does), the client's connection fails
with it — only the health check takes a backend out. A connection, once made, stays with its
backend until either end closes it, so a draining server must close kept-alive connections
itself (`Connection: close`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import httpx


class Balancer:
    def __init__(
        self, backends: list[int], check_every: float = 0.25, redispatch: bool = False
    ) -> None:
        self.backends = backends  # ports on 127.0.0.1
        self.check_every = check_every
        self.redispatch = redispatch
        self.healthy: set[int] = set()
        self.port = 0
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._checks: asyncio.Task[None] | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._check_all()
        self._checks = asyncio.create_task(self._keep_checking())
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._checks is not None:
            self._checks.cancel()
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()

    async def _keep_checking(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            await self._check_all()

    async def _check_all(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            for port in self.backends:
                try:
                    answer = await client.get(f"http://127.0.0.1:{port}/healthz")
                    up = answer.status_code == 200
                except httpx.TransportError:
                    up = False
                (self.healthy.add if up else self.healthy.discard)(port)

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        start = next(self._turn)
        candidates = [p for p in self.backends if p in self.healthy]
        for i in range(len(candidates)):
            port = candidates[(start + i) % len(candidates)]
            try:
                server_in, server_out = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if self.redispatch:
                    continue
                break
            self._pipe(client_in, server_out)
            self._pipe(server_in, client_out)
            return
        client_out.close()  # nobody to serve it: as a balancer with no backend up

    def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(_copy(source, sink))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()
