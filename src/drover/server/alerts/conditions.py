"""What each kind of alert rule finds now. An alert is keyed by what it is about — a host, a
host/application/service, a stream's consumer, `fleet` — and says why in a line.

Each alert says since when its condition holds as the fleet knows it (a host's last heartbeat,
a service's last change of status), so that a server that has just started does not wait a
rule's `after` again for what has held for hours (the alerter applies `after`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from drover.config.schema import AlertRule
from drover.model.status import Convergence, ServiceStatus
from drover.server.fleet import FleetView, Lifecycle

FAILING = ("failed", "interrupted", "expired")  # outcomes that count against the rate


@dataclass(frozen=True)
class Found:
    key: str
    summary: str
    since: datetime


@dataclass(frozen=True)
class Facts:
    """What the rules are checked against, gathered once per round."""

    now: datetime
    fleet: FleetView
    outcomes: Mapping[str, Mapping[str, int]]  # rule name → outcome → host results in window
    backlog: Mapping[str, Mapping[str, int]]  # stream → consumer → messages waiting
    stalled: Mapping[str, datetime]  # consumer → when a stall was last found


def found(name: str, rule: AlertRule, facts: Facts) -> list[Found]:
    """What `rule` (named `name`) finds now."""
    match rule.when:
        case "host_lost":
            return _hosts_lost(rule, facts)
        case "service_failed":
            return _services(rule, facts, drifted=False)
        case "service_drifted":
            return _services(rule, facts, drifted=True)
        case "action_failure_rate":
            return _failure_rate(rule, facts.outcomes.get(name, {}), facts.now)
        case "stream_backlog":
            return _backlog(rule, facts)
        case "stall":
            return _stalls(rule, facts)


def _hosts_lost(rule: AlertRule, facts: Facts) -> list[Found]:
    alerts = []
    for host in sorted(facts.fleet.hosts):
        if not _chosen(host, rule.hosts):
            continue
        status = facts.fleet.host_status(host, facts.now)
        if status is None or status.state is Lifecycle.ONLINE:
            continue
        summary = f"host {host} is {status.state}: {status.cause}"
        alerts.append(Found(host, summary, status.since))
    return alerts


def _services(rule: AlertRule, facts: Facts, *, drifted: bool) -> list[Found]:
    alerts = []
    for host, services in sorted(facts.fleet.services_by_host().items()):
        if not _chosen(host, rule.hosts):
            continue
        status = facts.fleet.host_status(host, facts.now)
        if status is None or not status.online:  # what an offline host last said is stale
            continue
        for (application, service), state in sorted(services.items()):
            if rule.applications and application not in rule.applications:
                continue
            key = f"{host}/{application}/{service}"
            if drifted:
                if state.convergence in (None, Convergence.OK):
                    continue
                summary = f"{key} is {state.status}, not at its target ({state.convergence})"
            else:
                if state.status is not ServiceStatus.FAILED:
                    continue
                summary = f"{key} failed" + (f": {state.message}" if state.message else "")
            alerts.append(Found(key, summary, state.since))
    return alerts


def _failure_rate(rule: AlertRule, outcomes: Mapping[str, int], now: datetime) -> list[Found]:
    total = sum(outcomes.values())
    failing = sum(outcomes.get(outcome, 0) for outcome in FAILING)
    if total < rule.min_actions or total == 0 or failing / total <= (rule.above or 0):
        return []
    window = timedelta(seconds=rule.window)
    summary = (
        f"{failing} of {total} host results failed in the last {_span(window)} "
        f"({failing / total:.0%}, above {rule.above:.0%})"
    )
    scope = ",".join(rule.applications) or "fleet"
    return [Found(scope, summary, now - window)]


def _backlog(rule: AlertRule, facts: Facts) -> list[Found]:
    assert rule.stream is not None and rule.above is not None
    alerts = []
    for consumer, waiting in sorted(facts.backlog.get(rule.stream, {}).items()):
        if waiting > rule.above:
            summary = f"{waiting} messages wait for {consumer} on {rule.stream}"
            alerts.append(Found(f"{rule.stream}/{consumer}", summary, facts.now))
    return alerts


def _stalls(rule: AlertRule, facts: Facts) -> list[Found]:
    window = timedelta(seconds=rule.window)
    return [
        Found(consumer, f"consumer {consumer} stalled at {at:%H:%M:%S} and was recreated", at)
        for consumer, at in sorted(facts.stalled.items())
        if facts.now - at <= window
    ]


def _chosen(host: str, globs: list[str]) -> bool:
    return not globs or any(fnmatchcase(host, glob) for glob in globs)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
