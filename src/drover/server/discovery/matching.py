"""Which of a host's systemd units belong to which application: pure functions over a
FleetConfig and the host's unit inventory.

A unit is *declared* when an application placed on the host names it as a `provider: systemd`
service; *claimed* when a discovery rule matches it (the first application by name wins; the
others' claims are reported as conflicts); *unassigned* otherwise, so nothing on a host goes
unseen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from drover.bus.messages import UnitInfo
from drover.config.placement import applications_on, placed_on, runs_on
from drover.config.schema import Application, DiscoveryRule, FleetConfig
from drover.model.names import is_name


@dataclass(frozen=True)
class Claim:
    """A unit that discovery made a service of an application on one host."""

    application: str
    service: str
    rule_index: int
    rule: DiscoveryRule
    unit: UnitInfo

    @property
    def vanished(self) -> bool:
        return self.unit.vanished_since is not None


@dataclass(frozen=True)
class Declared:
    application: str
    service: str
    unit: UnitInfo


@dataclass(frozen=True)
class Conflict:
    unit: str
    kept: str  # the application that has it
    also: str  # an application whose rule matched it too
    rule_index: int  # that application's rule


@dataclass(frozen=True)
class HostUnits:
    """Every unit of one host, sorted out."""

    declared: list[Declared] = field(default_factory=list)
    claimed: list[Claim] = field(default_factory=list)
    unassigned: list[UnitInfo] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    matched_rules: set[tuple[str, int]] = field(default_factory=set)  # (application, index)


def rule_matches(rule: DiscoveryRule, unit: UnitInfo) -> bool:
    if rule.units and not any(fnmatchcase(unit.unit, pattern) for pattern in rule.units):
        return False
    if rule.slice is not None and not fnmatchcase(unit.slice, rule.slice):
        return False
    return all(
        key in unit.properties and fnmatchcase(unit.properties[key], pattern)
        for key, pattern in rule.properties.items()
    )


def rule_applies(config: FleetConfig, app: Application, rule: DiscoveryRule, host: str) -> bool:
    """Whether the rule looks on `host`: its own hosts and groups, else the application's."""
    if rule.scoped:
        return placed_on(config, rule.hosts, rule.groups, host)
    return runs_on(config, app, host)


def sort_units(config: FleetConfig, host: str, units: Iterable[UnitInfo]) -> HostUnits:
    by_name = {unit.unit: unit for unit in units}
    result = HostUnits()
    placed = applications_on(config, host)
    taken: dict[str, str] = {}  # unit → application that has it
    # Declared names are never given to a claimed unit, also where the application is not
    # placed (a rule may look elsewhere): one name, one service, on every host.
    names = {app: set(spec.services) for app, spec in config.applications.items()}
    for app_name, app in placed.items():
        for svc_name, svc in sorted(app.services.items()):
            if svc.provider == "systemd" and svc.unit in by_name and svc.unit not in taken:
                result.declared.append(Declared(app_name, svc_name, by_name[svc.unit]))
                taken[svc.unit] = app_name
    for app_name, app in sorted(config.applications.items()):
        rules = [
            (index, rule)
            for index, rule in enumerate(app.discover)
            if rule_applies(config, app, rule, host)
        ]
        for index, rule in rules:
            for unit in sorted(by_name.values(), key=lambda u: u.unit):
                if not rule_matches(rule, unit):
                    continue
                result.matched_rules.add((app_name, index))
                owner = taken.get(unit.unit)
                if owner is None:
                    used = names.setdefault(app_name, set())
                    service = service_name(unit.unit, used)
                    used.add(service)
                    taken[unit.unit] = app_name
                    result.claimed.append(Claim(app_name, service, index, rule, unit))
                elif owner != app_name:
                    result.conflicts.append(Conflict(unit.unit, owner, app_name, index))
    result.unassigned.extend(u for name, u in sorted(by_name.items()) if name not in taken)
    return result


_UNFIT = re.compile(r"[^a-z0-9_-]+")


def service_name(unit: str, taken: Container[str] = ()) -> str:
    """The service name a claimed unit gets: `nginx.service` → `nginx`, `logrotate.timer` →
    `logrotate-timer`. A name that had to be changed to fit (upper case, `@`, `.`, too long) or
    that is taken already gets a short hash of the unit name, so it stays the same every time."""
    stem, _, kind = unit.rpartition(".")
    base = stem if kind == "service" else f"{stem}-{kind}"
    if is_name(base) and base not in taken:
        return base
    cleaned = _UNFIT.sub("-", base.lower()).strip("-_") or "unit"
    digest = hashlib.sha1(unit.encode(), usedforsecurity=False).hexdigest()[:6]
    return f"{cleaned[:55]}-{digest}"
