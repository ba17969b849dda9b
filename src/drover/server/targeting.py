"""Which hosts and services an action request means: pure functions over config, fleet and
what discovery found.

An application (or one of its services) runs on the hosts it is placed on and those where
discovery found it. A request narrows those: to the `hosts` it names (each must run it), to the
hosts in any of its `groups`, and to the hosts that carry every one of its `labels` (labels come
from the config's `hosts:` entries). All that is given must hold: a host named but outside the
groups or labels is left out, and a selection that leaves no host is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drover.config.placement import host_labels, in_group, runs_on
from drover.config.schema import Application, FleetConfig
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
    *,
    groups: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    for_command: bool = False,
) -> Target:
    """`discovered`: host → the application's services that discovery found there (vanished
    ones left out). `groups`: names of config groups, a host in any of them is selected;
    `labels`: every one must be on a host (see `parse_labels` for the `k=v,k=v` form).
    `for_command`: a command runs on every host the application is placed on or found on,
    whether or not it has services there."""
    app = config.applications.get(application)
    if app is None:
        raise NotFound(f"no application {application!r}")
    for group in groups or ():
        if group not in config.groups:
            raise NotFound(f"no host group {group!r}")
    what = f"service {service!r} of application" if service else "application"
    where = _runs_on(config, app, known_hosts, application, service, discovered or {}, for_command)
    if hosts:
        for host in hosts:
            if host not in where:
                raise NotFound(f"{what} {application!r} does not run on host {host!r}")
        where = set(hosts)
    if not where:
        why = " (its discovery rules have found no unit yet)" if app.discover else ""
        raise Unprocessable(f"application {application!r} runs on no known host{why}")
    chosen = sorted(h for h in where if _selected(config, h, groups or (), labels or {}))
    if not chosen:
        raise Unprocessable(
            f"{what} {application!r} runs on no host "
            f"{_selection(hosts, groups, labels)}: the selection matches nothing"
        )
    return Target(application, [service] if service else [], chosen)


def _runs_on(
    config: FleetConfig,
    app: Application,
    known_hosts: Iterable[str],
    application: str,
    service: str | None,
    found: Mapping[str, set[str]],
    for_command: bool = False,
) -> set[str]:
    placed = {h for h in set(known_hosts) | set(config.hosts) if runs_on(config, app, h)}
    if service is None:
        placing = app.services or for_command
        return (placed if placing else set()) | {h for h, names in found.items() if names}
    where = {h for h, names in found.items() if service in names}
    if service in app.services:
        where |= placed
    elif not where:
        raise NotFound(f"application {application!r} has no service {service!r}")
    return where


def _selected(
    config: FleetConfig, host: str, groups: Sequence[str], labels: Mapping[str, str]
) -> bool:
    carried = host_labels(config, host)
    if any(carried.get(key) != value for key, value in labels.items()):
        return False
    return not groups or any(in_group(config.groups[g], host, carried) for g in groups)


def _selection(
    hosts: Sequence[str] | None, groups: Sequence[str] | None, labels: Mapping[str, str] | None
) -> str:
    parts = []
    if hosts:
        parts.append(f"among {', '.join(sorted(set(hosts)))}")
    if groups:
        noun = "group" if len(groups) == 1 else "groups"
        parts.append(f"in {noun} {', '.join(repr(g) for g in groups)}")
    if labels:
        parts.append(f"with labels {format_labels(labels)}")
    return " ".join(parts)


def parse_labels(text: str) -> dict[str, str]:
    """`env=prod,dc=zrh` → {"env": "prod", "dc": "zrh"}: the labels a selection asks for.

    Spaces around keys and values are dropped; a value may hold `=` and may be empty (it then
    matches a label set to ""). A part without `=`, an empty key or a key given twice is refused.
    """
    if not text.strip():
        raise Unprocessable("labels: none given; write key=value[,key=value…]")
    labels: dict[str, str] = {}
    for part in text.split(","):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if not part.strip():
            raise Unprocessable(f"labels {text!r}: an empty entry (a stray comma?)")
        if not equals:
            raise Unprocessable(f"labels {text!r}: {part.strip()!r} is not key=value")
        if not key:
            raise Unprocessable(f"labels {text!r}: {part.strip()!r} has an empty key")
        if key in labels:
            raise Unprocessable(f"labels {text!r}: {key!r} is given twice")
        labels[key] = value
    return labels


def format_labels(labels: Mapping[str, str]) -> str:
    """The `k=v,k=v` form of `labels`, in key order (what `parse_labels` reads back)."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
