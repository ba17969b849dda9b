"""Which applications run on which host: pure functions over a FleetConfig."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from drover.config.schema import Application, FleetConfig, GroupSpec


def in_group(group: GroupSpec, host_id: str, labels: Mapping[str, str]) -> bool:
    if not any(fnmatchcase(host_id, pattern) for pattern in group.hosts):
        return False
    return all(labels.get(key) == value for key, value in group.labels.items())


def host_labels(config: FleetConfig, host_id: str) -> dict[str, str]:
    spec = config.hosts.get(host_id)
    return dict(spec.labels) if spec else {}


def runs_on(config: FleetConfig, app: Application, host_id: str) -> bool:
    return placed_on(config, app.hosts, app.groups, host_id)


def placed_on(
    config: FleetConfig, hosts: Sequence[str], groups: Sequence[str], host_id: str
) -> bool:
    """Whether `host_id` matches one of the host globs or is in one of the groups."""
    if any(fnmatchcase(host_id, pattern) for pattern in hosts):
        return True
    labels = host_labels(config, host_id)
    return any(
        name in config.groups and in_group(config.groups[name], host_id, labels) for name in groups
    )


def applications_on(config: FleetConfig, host_id: str) -> dict[str, Application]:
    """The applications placed on a host, by name, in name order."""
    return {
        name: app
        for name, app in sorted(config.applications.items())
        if runs_on(config, app, host_id)
    }
