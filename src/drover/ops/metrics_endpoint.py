"""The agent's local /metrics: a minimal HTTP/1.0 endpoint on the agent's own event loop.

Not prometheus_client's thread-based server: a scrape then reads the agent's state from another
thread while the loop changes it. Not uvicorn: it would cost every agent megabytes for one
route. A scrape is one GET; anything else gets a 404 or a 400, and every connection is closed
after one answer (and cut after `TIMEOUT` seconds), so a stuck client holds nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from drover.ops.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

TIMEOUT = 10.0
MAX_HEAD = 8192  # a request line and headers; Prometheus sends a few hundred bytes


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Listening once this returns; `close()` the server to stop."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            status, body, kind = _respond(head, metrics)
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # the client went away or sent nonsense: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), TIMEOUT)

    server = await asyncio.start_server(answer, host, port, limit=MAX_HEAD)
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
