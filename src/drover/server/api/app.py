"""The FastAPI application: routes, and errors turned into clear 4xx answers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from drover import __version__
from drover.ops.logging import correlated
from drover.server.api.alert_routes import alerting
from drover.server.api.approval_routes import approvals
from drover.server.api.auth_routes import auth, oidc
from drover.server.api.enrollment_routes import enrollment
from drover.server.api.event_routes import events
from drover.server.api.gui import mount_gui
from drover.server.api.ops_routes import operations
from drover.server.api.output_routes import output
from drover.server.api.overview_routes import overview
from drover.server.api.people_routes import people
from drover.server.api.routes import api, system
from drover.server.api.schedule_routes import scheduling
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
    app.include_router(approvals)
    app.include_router(output)
    app.include_router(auth)
    app.include_router(people)
    app.include_router(oidc)
    app.include_router(system)
    app.include_router(overview)
    app.include_router(events)
    app.include_router(enrollment)
    app.include_router(alerting)
    app.include_router(scheduling)
    app.include_router(operations)
    mount_gui(app)

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
        # The action API's availability (an SLI): a 5xx, or no answer at all, counts against.
        measured = request.url.path.startswith("/api/v1/actions")
        answered = False
        try:
            with correlated(correlation):
                response = await call_next(request)
            answered = response.status_code < 500
        finally:
            ORIGIN.reset(token)
            if measured:
                ctx.metrics.action_api.labels("ok" if answered else "error").inc()
        response.headers[REQUEST_ID] = correlation
        if ctx.draining.is_set():
            # A kept-alive connection would hold its client to this server until it is gone:
            # closed after this answer, the client's next request goes through the balancer
            # to a server that stays.
            response.headers["Connection"] = "close"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, but in ASCII JSON: what was sent may hold text that UTF-8
        # cannot encode (a lone surrogate, "\ud800"), and echoing it back must not turn a 422
        # into a 500.
        return _AsciiJSONResponse({"detail": jsonable_encoder(err.errors())}, status_code=422)

    @app.exception_handler(ServerError)
    async def server_error(_request: Request, err: ServerError) -> JSONResponse:
        return JSONResponse(
            {"detail": err.message}, status_code=err.status_code, headers=err.headers()
        )

    return app


class _AsciiJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")
