"""Live changes for the GUI: a stream of server-sent events saying what changed (server.live).

Open to any signed-in caller; each tick names only applications and hosts the caller may read.
The caller's credentials are checked again every KEEPALIVE_S: a revoked token, a signed-out or
idle session or a removed user ends the stream within that time, and a change of grants applies
from then. The check does not count as use of a session: an open page does not keep it alive.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from drover.model.access import Principal
from drover.server.api.access import Bearer, Caller, SessionCookie, presented
from drover.server.api.deps import Ctx
from drover.server.api.schemas import ErrorOut
from drover.server.api.visibility import Visibility
from drover.server.errors import ServerError

events = APIRouter(prefix="/api/v1", tags=["live"])

KEEPALIVE_S = 15.0
RETRY_MS = 2000  # how long a browser waits before it reconnects by itself
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@events.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        401: {"model": ErrorOut},
        200: {
            "content": {"text/event-stream": {}},
            "description": "`hello` (server_time) at once; then `change` (topics: fleet, "
            "actions, approvals, config, audit; applications, hosts, actions) as things "
            "change, at most every 0.25 s; a comment every 15 s; `end` (reason) when the "
            "credentials stop being valid",
        },
    },
)
async def follow_changes(
    request: Request, ctx: Ctx, caller: Caller, bearer: Bearer, session: SessionCookie
) -> StreamingResponse:
    given = presented(request, bearer, session)

    async def stream() -> AsyncIterator[bytes]:
        principal: Principal = caller
        checked = time.monotonic()
        yield f"retry: {RETRY_MS}\n".encode()
        yield _event("hello", {"server_time": ctx.clock.now().isoformat()})
        async with ctx.live.listen() as listener:
            while True:
                change = await listener.next(KEEPALIVE_S)
                if listener.closed:
                    return
                if time.monotonic() - checked >= KEEPALIVE_S:
                    try:
                        checked_again = await ctx.access.authenticator.authenticate(
                            given, touch=False
                        )
                        principal = checked_again.principal
                    except ServerError as err:
                        yield _event("end", {"reason": err.message})
                        return
                    checked = time.monotonic()
                if change is None:
                    yield b": keepalive\n\n"
                    continue
                seen = Visibility(ctx, principal)
                yield _event("change", change.seen_by(seen.application, seen.host))

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
