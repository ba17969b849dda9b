"""The FastAPI application: routes, and errors turned into clear 4xx answers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from drover import __version__
from drover.server.api.routes import api, system
from drover.server.context import ServerContext
from drover.server.errors import ServerError


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

    @app.exception_handler(ServerError)
    async def server_error(_request: Request, err: ServerError) -> JSONResponse:
        return JSONResponse({"detail": err.message}, status_code=err.status_code)

    return app
