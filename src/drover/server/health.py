"""How each placed service stands: its cell in an application's grid, its bucket in the overview.

A *placement* is one service of an application on one host: declared by the config (the
application runs on the host) or found there by discovery. Its *cell* holds what the host last
reported against the target in force there (the config's, or an override's). Its *bucket* is
what the overview counts it as, exactly one of:

- `failed`: the service failed;
- `unknown`: its host is not online, or it has not been reported (we cannot say more);
- `drifted`: reported, and not where its target says (see model.status.has_drift);
- `ok`: where its target says.

The overview counts every placement of the fleet, 200,000 at 10,000 hosts × 20 services, so
counting never builds a cell and what is placed where is computed once per config revision
and set of hosts.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from drover.config.placement import runs_on
from drover.config.schema import Application, FleetConfig
from drover.model.override import Override, effective_target
from drover.model.status import Convergence, Policy, ServiceStatus, TargetStatus, has_drift
from drover.server.discovery.matching import Claim
from drover.server.discovery.tracker import Discovery
from drover.server.fleet import FleetView


class Bucket(StrEnum):
    OK = "ok"
    DRIFTED = "drifted"
    FAILED = "failed"
    UNKNOWN = "unknown"


def bucket(status: ServiceStatus | None, target: TargetStatus, host_online: bool) -> Bucket:
    if status is ServiceStatus.FAILED:
        return Bucket.FAILED
    if not host_online or status is None or status is ServiceStatus.UNKNOWN:
        return Bucket.UNKNOWN
    return Bucket.DRIFTED if has_drift(status, target) else Bucket.OK


@dataclass
class Counts:
    ok: int = 0
    drifted: int = 0
    failed: int = 0
    unknown: int = 0

    def add(self, which: Bucket) -> None:
        setattr(self, which.value, getattr(self, which.value) + 1)

    def has(self, which: Bucket) -> bool:
        return bool(getattr(self, which.value))

    @property
    def total(self) -> int:
        return self.ok + self.drifted + self.failed + self.unknown


@dataclass(frozen=True, slots=True)
class Cell:
    """One placement as it stands."""

    host: str
    service: str
    unit: str | None  # the systemd unit, for a service discovery found
    target: TargetStatus  # in force here
    override: Override | None  # the one that set the target, if any
    status: ServiceStatus | None  # None: not reported
    since: datetime | None
    pid: int | None
    message: str
    convergence: Convergence | None
    host_online: bool

    @property
    def drift(self) -> bool:
        return has_drift(self.status, self.target)

    @property
    def bucket(self) -> Bucket:
        return bucket(self.status, self.target, self.host_online)


@dataclass
class ServiceRow:
    """A service of the application: configured, or one discovery found."""

    name: str
    provider: str
    target: TargetStatus  # as configured; a host's may be overridden
    policy: Policy
    discovered: bool
    hosts: dict[str, Claim | None] = field(default_factory=dict)  # the claim, if discovered


class ApplicationPicture:
    """One application against the fleet, at one moment: its services, the hosts each is
    placed on, and each placement's cell on request."""

    def __init__(
        self,
        config: FleetConfig,
        fleet: FleetView,
        name: str,
        app: Application,
        now: datetime,
        overrides: Sequence[Override] = (),
        discovery: Discovery | None = None,
        online: dict[str, bool] | None = None,
    ) -> None:
        """`online`: whether each host is, shared by the pictures of one request (and filled
        as they ask), so that a fleet's hosts are judged once, not once per application."""
        self.name = name
        self.app = app
        self._config = config
        self._fleet = fleet
        self._discovery = discovery
        self._now = now
        # Usually none: the common case skips the search for one per placement.
        self._overrides = [o for o in overrides if o.application == name and o.active(now)]
        # Shared by every picture until what is placed where may change: read-only.
        self.services, self.hosts = _placements(config, fleet, name, app, discovery)
        self._online: dict[str, bool] = {} if online is None else online

    def online(self, host: str) -> bool:
        if host not in self._online:
            status = self._fleet.host_status(host, self._now)
            self._online[host] = bool(status and status.online)
        return self._online[host]

    def target(self, row: ServiceRow, host: str) -> tuple[TargetStatus, Override | None]:
        claim = row.hosts.get(host)
        # Rules scoped to different hosts may give one unit different targets.
        configured = claim.rule.target if claim else row.target
        if not self._overrides:
            return configured, None
        return effective_target(configured, self._overrides, self.name, row.name, host, self._now)

    def cell(self, row: ServiceRow, host: str) -> Cell | None:
        if host not in row.hosts:
            return None
        claim = row.hosts[host]
        target, override = self.target(row, host)
        state = self._fleet.service(host, self.name, row.name)
        if claim is not None and claim.unit.vanished_since is not None:
            return Cell(
                host=host,
                service=row.name,
                unit=claim.unit.unit,
                target=target,
                override=override,
                status=ServiceStatus.VANISHED,
                since=claim.unit.vanished_since,
                pid=None,
                message=f"{claim.unit.unit} is gone from the host",
                convergence=None,
                host_online=self.online(host),
            )
        return Cell(
            host=host,
            service=row.name,
            unit=claim.unit.unit if claim else None,
            target=target,
            override=override,
            status=state.status if state else None,
            since=state.since if state else None,
            pid=state.pid if state else None,
            message=state.message if state else "",
            convergence=state.convergence if state else None,
            host_online=self.online(host),
        )

    def bucket(self, row: ServiceRow, host: str) -> Bucket:
        """What `cell(row, host).bucket` would say, without building the cell."""
        claim = row.hosts[host]
        if claim is not None and claim.unit.vanished_since is not None:
            status: ServiceStatus | None = ServiceStatus.VANISHED
        else:
            state = self._fleet.service(host, self.name, row.name)
            status = state.status if state else None
        return bucket(status, self.target(row, host)[0], self.online(host))

    def counts(self, hosts: set[str] | None = None) -> Counts:
        """Every placement's bucket, counted; only on `hosts` if given.

        Unfiltered counts are kept, host by host, and only the hosts the fleet told of a
        change since are counted again: under a fleet's stream of state changes, a page that
        asks counts what changed, not 200,000 placements. Everything is counted again when
        what is placed where or the targets may have changed (the config, the fleet's hosts,
        discovery, the overrides in force)."""
        if hosts is not None:
            return self._count(hosts)
        key = (
            self._config.revision,
            self._fleet.hosts_version,
            self._discovery.version if self._discovery else None,
            tuple(o.id for o in self._overrides),
        )
        tally = _tallies(self._fleet).of(self.name, key)
        if tally.stale:
            tally.restart({host: self._host_counts(host) for host in self.hosts})
        else:
            for host in tally.take_changed():
                tally.put(host, self._host_counts(host) if host in tally.hosts else None)
        return tally.counts()

    def _host_counts(self, host: str) -> _Row:
        tally = [0, 0, 0, 0]
        for row in self.services:
            if host in row.hosts:
                tally[_INDEX[self.bucket(row, host)]] += 1
        return (tally[0], tally[1], tally[2], tally[3])

    def _count(self, hosts: set[str] | None) -> Counts:
        """The overview's inner loop, 200,000 times at 10,000 hosts × 20 services."""
        tally = dict.fromkeys(Bucket, 0)
        services_of = self._fleet.services_by_host()
        online = self.online
        for row in self.services:
            key = (self.name, row.name)
            for host, claim in row.hosts.items():
                if hosts is not None and host not in hosts:
                    continue
                if claim is not None and claim.unit.vanished_since is not None:
                    status: ServiceStatus | None = ServiceStatus.VANISHED
                else:
                    state = services_of.get(host, {}).get(key)
                    status = state.status if state else None
                if self._overrides:
                    target = self.target(row, host)[0]
                else:
                    target = claim.rule.target if claim else row.target
                tally[bucket(status, target, online(host))] += 1
        return Counts(
            ok=tally[Bucket.OK],
            drifted=tally[Bucket.DRIFTED],
            failed=tally[Bucket.FAILED],
            unknown=tally[Bucket.UNKNOWN],
        )

    def host_buckets(self, host: str) -> Iterator[Bucket]:
        for row in self.services:
            if host in row.hosts:
                yield self.bucket(row, host)


_Row = tuple[int, int, int, int]  # ok, drifted, failed, unknown: one host's placements
_INDEX = {Bucket.OK: 0, Bucket.DRIFTED: 1, Bucket.FAILED: 2, Bucket.UNKNOWN: 3}


class _Tally:
    """An application's unfiltered counts, host by host, and the hosts changed since."""

    def __init__(self, key: tuple[object, ...]) -> None:
        self.key = key
        self.stale = True  # nothing counted yet for this key
        self.hosts: dict[str, _Row] = {}
        self._totals = [0, 0, 0, 0]
        self._changed: set[str] = set()

    def restart(self, rows: dict[str, _Row]) -> None:
        self.hosts = rows
        self._totals = [sum(row[i] for row in rows.values()) for i in range(4)]
        self._changed.clear()
        self.stale = False

    def changed(self, host: str) -> None:
        if not self.stale:
            self._changed.add(host)

    def take_changed(self) -> set[str]:
        taken, self._changed = self._changed, set()
        return taken

    def put(self, host: str, row: _Row | None) -> None:
        old = self.hosts.pop(host, (0, 0, 0, 0))
        if row is not None:
            self.hosts[host] = row
        new = row or (0, 0, 0, 0)
        for i in range(4):
            self._totals[i] += new[i] - old[i]

    def counts(self) -> Counts:
        ok, drifted, failed, unknown = self._totals
        return Counts(ok=ok, drifted=drifted, failed=failed, unknown=unknown)


class _FleetTallies:
    """Every application's tally of one fleet, told of each change the fleet shows."""

    def __init__(self, fleet: FleetView) -> None:
        self._apps: dict[str, _Tally] = {}
        fleet.listeners.append(self._told)

    def of(self, application: str, key: tuple[object, ...]) -> _Tally:
        tally = self._apps.get(application)
        if tally is None or tally.key != key:
            tally = self._apps[application] = _Tally(key)
        return tally

    def _told(self, host: str, application: str | None) -> None:
        if application is not None:
            if (tally := self._apps.get(application)) is not None:
                tally.changed(host)
            return
        for tally in self._apps.values():  # the host itself: every application on it
            tally.changed(host)


_TALLIES: weakref.WeakKeyDictionary[FleetView, _FleetTallies] = weakref.WeakKeyDictionary()


def _tallies(fleet: FleetView) -> _FleetTallies:
    found = _TALLIES.get(fleet)
    if found is None:
        found = _TALLIES[fleet] = _FleetTallies(fleet)
    return found


# Per fleet and application: the hosts it is placed on, with the (config revision, the fleet's
# hosts_version) they were found for. Glob and label matching of every host for every
# application is what a page at 10,000 hosts would otherwise spend its time on; the key changes
# whenever the answer can, and only the newest answer is kept.
_PLACED: weakref.WeakKeyDictionary[FleetView, dict[str, tuple[tuple[str, int], list[str]]]] = (
    weakref.WeakKeyDictionary()
)


# Per fleet and application: its service rows and the hosts they are placed on, with the
# (config revision, the fleet's hosts_version, discovery's version) they were made for. A page
# at 10,000 hosts × 20 services would otherwise build 200,000 dict entries per request.
_ROWS: weakref.WeakKeyDictionary[
    FleetView, dict[str, tuple[tuple[object, ...], tuple[list[ServiceRow], list[str]]]]
] = weakref.WeakKeyDictionary()


def _placements(
    config: FleetConfig, fleet: FleetView, name: str, app: Application, discovery: Discovery | None
) -> tuple[list[ServiceRow], list[str]]:
    """The application's service rows (every host each is placed on, with discovery's claim
    there), and every host one of them is placed on, in order."""
    cache = _ROWS.setdefault(fleet, {})
    key = (config.revision, fleet.hosts_version, discovery.version if discovery else None)
    found = cache.get(name)
    if found is not None and found[0] == key:
        return found[1]
    placed = placed_hosts(config, fleet, name, app)
    rows = {
        svc: ServiceRow(svc, spec.provider, spec.target, spec.policy, False, dict.fromkeys(placed))
        for svc, spec in app.services.items()
    }
    for host, claim in discovery.claims_of(name) if discovery else []:
        row = rows.setdefault(
            claim.service,
            ServiceRow(claim.service, "systemd", claim.rule.target, claim.rule.policy, True),
        )
        row.hosts[host] = claim
    services = [rows[svc] for svc in sorted(rows)]
    hosts = sorted({h for row in services for h in row.hosts})
    cache[name] = (key, (services, hosts))
    return services, hosts


def placed_hosts(config: FleetConfig, fleet: FleetView, name: str, app: Application) -> list[str]:
    cache = _PLACED.setdefault(fleet, {})
    key = (config.revision, fleet.hosts_version)
    found = cache.get(name)
    if found is not None and found[0] == key:
        return found[1]
    candidates = set(fleet.hosts) | set(config.hosts)
    hosts = sorted(h for h in candidates if runs_on(config, app, h))
    cache[name] = (key, hosts)
    return hosts
