"""What an operator's tools read: /metrics for Prometheus, /connections (the agents connected
now) and /debug/tasks (what the server's event loop is doing, for a server that seems stuck).

/metrics and /connections describe the whole fleet, so they need `read` unscoped (a viewer's
token for Prometheus: `authorization: {credentials_file: …}` in its scrape config);
/debug/tasks shows the server's insides, so it needs `admin`.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from drover.model.access import Permission
from drover.model.names import HostId
from drover.ops.metrics import CONTENT_TYPE
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.routes import DENIED, TOTAL_COUNT
from drover.server.api.schemas import Body
from drover.server.fleet import Lifecycle
from drover.server.metrics import fleet_figures

operations = APIRouter(tags=["operations"])


@operations.get(
    "/metrics",
    response_class=Response,
    responses={**DENIED, 200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}},
)
async def metrics(ctx: Ctx, caller: Caller) -> Response:
    """Prometheus metrics of this server process and of the fleet as it sees it."""
    await authorize(ctx, caller, Permission.READ)
    figures = await fleet_figures(ctx)
    return Response(ctx.metrics.exposition(figures), media_type=CONTENT_TYPE)


class ConnectionOut(Body):
    host: HostId
    hostname: str
    address: str | None = Field(description="as nats-server sees it; null from older agents")
    bus_server: str | None = Field(description="host:port of the nats-server it is on")
    agent_version: str
    connected_since: datetime | None = Field(description="its current connection's start")
    started_at: datetime = Field(description="when its agent started")
    last_heartbeat: datetime


@operations.get(
    "/connections",
    response_model=list[ConnectionOut],
    responses={
        **DENIED,
        200: {"headers": {TOTAL_COUNT: {"description": "agents connected now"}}},
    },
)
async def connections(
    ctx: Ctx,
    caller: Caller,
    response: Response,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[ConnectionOut]:
    """The agents connected now (online: heartbeats arriving), in host order, paged."""
    await authorize(ctx, caller, Permission.READ)
    now = ctx.clock.now()
    online = []
    for host in sorted(ctx.fleet.hosts):
        status = ctx.fleet.host_status(host, now)
        if status is not None and status.state is Lifecycle.ONLINE:
            online.append(status.record)
    response.headers[TOTAL_COUNT] = str(len(online))
    return [
        ConnectionOut(
            host=record.host,
            hostname=record.hostname,
            address=record.address,
            bus_server=record.bus_server,
            agent_version=record.agent_version,
            connected_since=record.connected_since,
            started_at=record.started_at,
            last_heartbeat=record.heartbeat_at,
        )
        for record in online[offset : offset + limit]
    ]


class TaskOut(Body):
    name: str
    coroutine: str
    done: bool
    stack: str = Field(description="where it waits now, innermost frame last")


@operations.get("/debug/tasks", response_model=list[TaskOut], responses=DENIED)
async def debug_tasks(ctx: Ctx, caller: Caller) -> list[TaskOut]:
    """Every asyncio task of the server process with where it waits (admins only)."""
    await authorize(ctx, caller, Permission.ADMIN)
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    return [_task(task) for task in tasks]


def _task(task: asyncio.Task[object]) -> TaskOut:
    stack = io.StringIO()
    task.print_stack(limit=20, file=stack)
    coroutine = task.get_coro()
    return TaskOut(
        name=task.get_name(),
        coroutine=getattr(coroutine, "__qualname__", repr(coroutine)),
        done=task.done(),
        stack=stack.getvalue(),
    )
