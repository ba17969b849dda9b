"""A command's output: followed live (server-sent events), or read whole (text/plain).

Both need `read` on the action's application. The action is looked up first (404 if there is
none: ids are random and reveal nothing), then the caller is authorized on its application, in
the environment recorded with the action.

The whole output is the command's bytes, served from the API's own origin (where the session
cookie lives): `nosniff`, a CSP that allows nothing and a download name keep a browser from
ever taking it for a page and running what a command printed.
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
from drover.server.api.schemas import ActionId, ErrorOut
from drover.server.context import ServerContext
from drover.server.errors import NotFound, Unprocessable
from drover.server.output_feed import feed, parse_event_id
from drover.store.actions import Action

output = APIRouter(prefix="/api/v1", tags=["output"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# What a command printed is not a page: never sniffed as HTML, never allowed to run anything.
UNTRUSTED_TEXT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


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
    action_id: ActionId,
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
async def whole_output(
    action_id: ActionId, host: HostId, ctx: Ctx, caller: Caller
) -> StreamingResponse:
    """Everything a host's command wrote, as it wrote it (the bytes as they are, even when
    they are not UTF-8), so far."""
    action = await _command_action(ctx, caller, action_id)
    _hosts_of(action, [host])
    return StreamingResponse(
        ctx.output.store.whole(action.id, host),
        media_type="text/plain; charset=utf-8",
        headers={
            **STREAM_HEADERS,
            **UNTRUSTED_TEXT_HEADERS,
            # Ids and host ids are [A-Za-z0-9_-]: safe in a header as they are.
            "Content-Disposition": f'inline; filename="{action.id}-{host}.txt"',
        },
    )


async def _command_action(ctx: ServerContext, caller: Principal, action_id: str) -> Action:
    action = await ctx.store.get(action_id)
    if action is None:
        raise NotFound(f"no action {action_id!r}")
    await authorize(
        ctx, caller, Permission.READ, action.application, environment=action.environment
    )
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
