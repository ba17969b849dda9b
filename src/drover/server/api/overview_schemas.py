"""Bodies of the GUI pages' endpoints: the fleet overview, an application's grid."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from drover.model.command import ParamType
from drover.model.names import HostId, Name
from drover.model.status import Policy, ServiceStatus, TargetStatus
from drover.server.api.schemas import Body, CountsOut
from drover.server.fleet import Lifecycle
from drover.server.health import Bucket


class ApplicationHealthOut(Body):
    name: Name
    description: str
    environment: Name
    owners: list[str]
    services: int = Field(description="how many services it has")
    hosts: int = Field(description="how many hosts one of them is placed on")
    counts: CountsOut = Field(description="every placement (a service on a host), by how it is")


class HostTotalsOut(Body):
    online: int
    offline: int
    lost: int
    total: int


class OverviewOut(Body):
    applications: list[ApplicationHealthOut]
    environments: list[Name] = Field(description="of the applications listed, in order")
    hosts: HostTotalsOut = Field(description="the hosts the caller may see, by lifecycle")
    generated_at: datetime


class GridServiceOut(Body):
    name: Name
    provider: str
    target: TargetStatus = Field(description="as configured; a host's may be overridden")
    policy: Policy
    discovered: bool


class ParamOut(Body):
    name: str
    type: ParamType
    description: str
    required: bool
    default: str | int | float | bool | None
    minimum: int | None
    maximum: int | None
    choices: list[str] | None
    pattern: str | None


class CommandSpecOut(Body):
    name: Name
    description: str
    timeout_s: float
    params: list[ParamOut]


class OverrideBadgeOut(Body):
    id: str
    status: TargetStatus
    reason: str
    created_by: str
    expires_at: datetime


class CellOut(Body):
    status: ServiceStatus | None = Field(description="null: not reported")
    target: TargetStatus = Field(description="in force here")
    override: OverrideBadgeOut | None
    drift: bool
    bucket: Bucket
    since: datetime | None
    message: str


class GridRowOut(Body):
    host: HostId
    online: bool
    state: Lifecycle | None = Field(description="null: the host never reported")
    cells: list[CellOut | None] = Field(
        description="one per service, in `services` order; null: not placed on this host"
    )


class GridOut(Body):
    application: Name
    description: str
    environment: Name
    owners: list[str]
    services: list[GridServiceOut]
    commands: list[CommandSpecOut]
    counts: CountsOut = Field(description="every placement of the application, unfiltered")
    total: int = Field(description="hosts that pass the filters")
    offset: int
    rows: list[GridRowOut]
