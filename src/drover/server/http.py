"""Serving the API with uvicorn inside our own event loop and TaskGroup."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from fastapi import FastAPI

FINISH_WITHIN = 10  # seconds


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to our entry point, which drains everything in order.
        yield


class HttpServer:
    def __init__(
        self, app: FastAPI, host: str, port: int, trusted_proxies: Sequence[str] | None = None
    ) -> None:
        # Made as a TCP socket by name: asyncio sets TCP_NODELAY on the connections of a
        # listening socket only when its proto is IPPROTO_TCP, and without it every small
        # answer on a kept-alive connection waits ~40 ms for the client's delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # bound now, so port 0 is resolved before anyone asks
        self.sock.set_inheritable(True)
        if trusted_proxies is None:
            trusted_proxies = _trusted_proxies(app)
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: any local
        # caller could then choose the address the login rate limit counts. Only the reverse
        # proxies named (--trusted-proxy) are believed.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=list(trusted_proxies) or None,
            # Requests under way when the API stops get this long to finish (every API request
            # is short; the event streams are ended before): a client that never finishes
            # sending one must not hold the server's stop for ever.
            timeout_graceful_shutdown=FINISH_WITHIN,
        )
        self._server = _Uvicorn(config)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def serve(self) -> None:
        await self._server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self._server.should_exit = True


def _trusted_proxies(app: FastAPI) -> tuple[str, ...]:
    """The server's `trusted_proxies` setting, from the app's context (none without one)."""
    ctx = getattr(app.state, "ctx", None)
    access = getattr(ctx, "access", None)
    return tuple(getattr(getattr(access, "settings", None), "trusted_proxies", ()))
