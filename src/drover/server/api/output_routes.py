"""A command's output: followed live (server-sent events), or read whole (text/plain).

Both need `read` on the action's application. The action is looked up first (404 if there is
none: ids are random and reveal nothing), then the caller is authorized on its application.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from drover.model.access import Permission, Principal
from drover.model.names import HostId
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.schemas import ErrorOut
from drover.server.context import ServerContext
from drover.server.errors import NotFound, Unprocessable
from drover.server.output_feed import feed, parse_event_id
from drover.store.actions import Action

output = APIRouter(prefix="/api/v1", tags=["output"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@output.get(
    "/actions/{action_id}/output",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": "events `output` (host, seq, text), `end` (host, outcome, exit_code, "
            "chunks, missing) per host, then `done`; each `output` and `end` has an id to "
            "resume from with Last-Event-ID",
        },
    },
)
async def follow_output(
    action_id: str,
    ctx: Ctx,
    caller: Caller,
    host: Annotated[
        list[HostId] | None, Query(description="only these hosts (repeatable); default: all")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64, description="resume after it")
    ] = None,
) -> StreamingResponse:
    """A command's output as it is stored: what is there first, then what comes, until every
    selected host has ended."""
    action = await _command_action(ctx, caller, action_id)
    hosts = _hosts_of(action, host)
    after = parse_event_id(last_event_id)
    if after is None:
        raise Unprocessable(f"Last-Event-ID {last_event_id!r} is not an id this stream sent")

    async def events() -> AsyncIterator[bytes]:
        changes = ctx.output.changes
        async for event in feed(
            ctx.output.store, changes, action.id, hosts, after, only=host is not None
        ):
            yield event.encode()

    return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)


@output.get(
    "/actions/{action_id}/hosts/{host}/output",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/plain": {}}}},
)
async def whole_output(action_id: str, host: HostId, ctx: Ctx, caller: Caller) -> StreamingResponse:
    """Everything a host's command wrote, as it wrote it (the bytes as they are, even when
    they are not UTF-8), so far."""
    action = await _command_action(ctx, caller, action_id)
    _hosts_of(action, [host])
    return StreamingResponse(
        ctx.output.store.whole(action.id, host),
        media_type="text/plain; charset=utf-8",
        headers=STREAM_HEADERS,
    )


async def _command_action(ctx: ServerContext, caller: Principal, action_id: str) -> Action:
    action = await ctx.store.get(action_id)
    if action is None:
        raise NotFound(f"no action {action_id!r}")
    await authorize(ctx, caller, Permission.READ, action.application)
    if action.command is None:
        raise Unprocessable(
            f"action {action_id} is a {action.kind}, not a command: its hosts' output is in "
            "the action itself"
        )
    return action


def _hosts_of(action: Action, wanted: list[str] | None) -> list[str]:
    hosts = [h.host for h in action.hosts]
    for name in wanted or []:
        if name not in hosts:
            raise NotFound(f"action {action.id} has no host {name!r}")
    return sorted(set(wanted)) if wanted else hosts
