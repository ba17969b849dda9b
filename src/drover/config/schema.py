"""The YAML schema, as pydantic models. Unknown fields are errors, so typos never pass silently.

A config repository holds any number of `*.yaml` / `*.yml` files. Each file is a mapping with
any of the top-level keys `applications`, `hosts` and `groups`; the loader merges them, and a
name defined in two files is an error that points at both.

    applications:
      shop:
        owners: [team-shop]
        environment: production
        groups: [web]            # where it runs: host groups and/or host id globs (`hosts`)
        services:
          web:
            provider: process
            target: running
            command: [python3, -m, http.server, "8101"]
    hosts:
      web-01: {labels: {env: prod, dc: zrh}}
    groups:
      web: {hosts: ["web-*"], labels: {env: prod}}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from drover.model.names import HostId, Name
from drover.model.status import TargetStatus


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


# What the kernel can pass to exec: no NUL anywhere, no '=' in a variable's name.
Arg = Annotated[str, AfterValidator(_no_nul)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(_Strict):
    """One service of an application, as the agent should run it."""

    provider: Literal["process"] = "process"
    target: TargetStatus = TargetStatus.RUNNING
    command: list[Arg] = Field(min_length=1, description="argv list; never a shell string")
    env: dict[EnvName, Arg] = Field(default_factory=dict)
    cwd: Arg | None = None
    stop_timeout: float = Field(default=10.0, gt=0, le=600)


class Application(_Strict):
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    environment: Name = "default"
    hosts: list[str] = Field(default_factory=list, description="host id globs")
    groups: list[Name] = Field(default_factory=list, description="host group names")
    services: dict[Name, ServiceSpec] = Field(min_length=1)


class HostSpec(_Strict):
    labels: dict[str, str] = Field(default_factory=dict)


class GroupSpec(_Strict):
    """Hosts whose id matches any of `hosts` (globs) and that carry every label in `labels`."""

    hosts: list[str] = Field(default_factory=lambda: ["*"])
    labels: dict[str, str] = Field(default_factory=dict)


class ConfigFile(_Strict):
    """What one YAML file may contain."""

    applications: dict[Name, Application] = Field(default_factory=dict)
    hosts: dict[HostId, HostSpec] = Field(default_factory=dict)
    groups: dict[Name, GroupSpec] = Field(default_factory=dict)


class FleetConfig(_Strict):
    """All files merged: the desired state of the fleet at one revision."""

    revision: str
    applications: dict[Name, Application] = Field(default_factory=dict)
    hosts: dict[HostId, HostSpec] = Field(default_factory=dict)
    groups: dict[Name, GroupSpec] = Field(default_factory=dict)
