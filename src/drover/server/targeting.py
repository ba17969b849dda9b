"""Which hosts and services an action request means: pure functions over config and fleet."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drover.config.placement import runs_on
from drover.config.schema import FleetConfig
from drover.server.errors import NotFound, Unprocessable


@dataclass(frozen=True)
class Target:
    application: str
    services: list[str]
    hosts: list[str]


def resolve(
    config: FleetConfig,
    known_hosts: Iterable[str],
    application: str,
    service: str | None,
    hosts: Sequence[str] | None,
) -> Target:
    app = config.applications.get(application)
    if app is None:
        raise NotFound(f"no application {application!r}")
    if service is not None and service not in app.services:
        raise NotFound(f"application {application!r} has no service {service!r}")
    services = [service] if service is not None else sorted(app.services)
    placed = sorted(h for h in set(known_hosts) | set(config.hosts) if runs_on(config, app, h))
    if hosts:
        for host in hosts:
            if host not in placed:
                raise NotFound(f"application {application!r} does not run on host {host!r}")
        chosen = sorted(set(hosts))
    else:
        chosen = placed
    if not chosen:
        raise Unprocessable(f"application {application!r} runs on no known host")
    return Target(application, services, chosen)
