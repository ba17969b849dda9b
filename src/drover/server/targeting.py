"""Which hosts and services an action request means: pure functions over config, fleet and
what discovery found."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drover.config.placement import runs_on
from drover.config.schema import FleetConfig
from drover.server.errors import NotFound, Unprocessable


@dataclass(frozen=True)
class Target:
    application: str
    services: list[str]  # empty: every service of the application each host runs
    hosts: list[str]


def resolve(
    config: FleetConfig,
    known_hosts: Iterable[str],
    application: str,
    service: str | None,
    hosts: Sequence[str] | None,
    discovered: Mapping[str, set[str]] | None = None,
) -> Target:
    """`discovered`: host → the application's services that discovery found there (vanished
    ones left out)."""
    app = config.applications.get(application)
    if app is None:
        raise NotFound(f"no application {application!r}")
    found = discovered or {}
    placed = {h for h in set(known_hosts) | set(config.hosts) if runs_on(config, app, h)}
    if service is None:
        where = (placed if app.services else set()) | {h for h, names in found.items() if names}
    else:
        where = {h for h, names in found.items() if service in names}
        if service in app.services:
            where |= placed
        elif not where:
            raise NotFound(f"application {application!r} has no service {service!r}")
    if hosts:
        for host in hosts:
            if host not in where:
                what = f"service {service!r} of application" if service else "application"
                raise NotFound(f"{what} {application!r} does not run on host {host!r}")
        chosen = sorted(set(hosts))
    else:
        chosen = sorted(where)
    if not chosen:
        why = " (its discovery rules have found no unit yet)" if app.discover else ""
        raise Unprocessable(f"application {application!r} runs on no known host{why}")
    return Target(application, [service] if service else [], chosen)
