"""The agent's local /metrics: a minimal HTTP/1.0 endpoint on the agent's own event loop.

Not prometheus_client's thread-based server: a scrape then reads the agent's state from another
thread while the loop changes it. Not uvicorn: it would cost every agent megabytes for one
route. A scrape is one GET; anything else gets a 404 or a 400, and every connection is closed
after one answer (and cut after `TIMEOUT` seconds), and at most `MAX_CONNECTIONS` are open at
once (more are closed at once), so no client can use up the agent's file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from drover.ops.cancels import bounded
from drover.ops.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

TIMEOUT = 5.0
MAX_HEAD = 8192  # a request line and headers; Prometheus sends a few hundred bytes
MAX_CONNECTIONS = 4


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server | None:
    """Listening once this returns; `close()` the server to stop. None when the address
    cannot be had (taken, not this host's): logged, and the agent runs on without it."""
    open_now = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        if open_now >= MAX_CONNECTIONS:
            writer.close()
            return
        open_now += 1
        try:
            head = await bounded(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            status, body, kind = _respond(head, metrics)
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await bounded(writer.drain(), TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # the client went away or sent nonsense: nothing to answer
        finally:
            open_now -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await bounded(writer.wait_closed(), TIMEOUT)

    try:
        server = await asyncio.start_server(answer, host, port, limit=MAX_HEAD)
    except OSError as err:
        log.error("metrics: cannot listen on %s:%d (%s); running without them", host, port, err)
        return None
    log.info("metrics on http://%s:%d/metrics", host, _port(server))
    return server


def _respond(head: bytes, metrics: Metrics) -> tuple[str, bytes, str]:
    request_line = head.split(b"\r\n", 1)[0].split()
    if len(request_line) != 3:
        return "400 Bad Request", b"bad request\n", "text/plain"
    method, target = request_line[0], request_line[1].split(b"?", 1)[0]
    if method != b"GET" or target != b"/metrics":
        return "404 Not Found", b"only GET /metrics here\n", "text/plain"
    return "200 OK", metrics.exposition(), CONTENT_TYPE


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
