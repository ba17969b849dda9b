"""The FastAPI application: routes, and errors turned into clear 4xx answers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from drover import __version__
from drover.server.api.routes import api, system
from drover.server.context import ServerContext
from drover.server.errors import ServerError
from drover.store.audit import ORIGIN, Origin

REQUEST_ID = "X-Request-Id"
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def create_app(ctx: ServerContext) -> FastAPI:
    app = FastAPI(
        title="drover",
        version=__version__,
        description="Application management for fleets of Linux servers.",
        docs_url="/docs",
    )
    app.state.ctx = ctx
    app.include_router(api)
    app.include_router(system)

    @app.middleware("http")
    async def origin(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every change made by this request goes on record with where it came from and one
        correlation id, the caller's (`X-Request-Id`) or a new one; the answer carries it."""
        given = request.headers.get(REQUEST_ID, "")
        correlation = given if _CORRELATION.fullmatch(given) else uuid.uuid4().hex
        source = request.client.host if request.client else ""
        token = ORIGIN.set(Origin(source, correlation))
        try:
            response = await call_next(request)
        finally:
            ORIGIN.reset(token)
        response.headers[REQUEST_ID] = correlation
        return response

    @app.exception_handler(ServerError)
    async def server_error(_request: Request, err: ServerError) -> JSONResponse:
        return JSONResponse({"detail": err.message}, status_code=err.status_code)

    return app
