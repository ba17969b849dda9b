"""Each host's units, sorted into applications, kept current from the inventory bucket.

Agents write their whole inventory (bus.messages.UnitInventory) when the set of units changes;
this watches those keys and sorts a host's units again whenever its inventory or the config
changes, then tells whoever publishes desired state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from drover.bus import subjects
from drover.bus.connection import Bus
from drover.bus.errors import MalformedMessage
from drover.bus.kvwatch import watch_kv
from drover.bus.messages import UnitInventory, decode
from drover.config.errors import ConfigProblem
from drover.config.schema import FleetConfig, rule_key
from drover.server.discovery.matching import Claim, HostUnits, rule_applies, sort_units

log = logging.getLogger(__name__)

NOTHING = HostUnits()


@dataclass(frozen=True)
class _ConflictSeen:
    unit: str
    kept: str
    hosts: list[str]


class Discovery:
    def __init__(self, bus: Bus, on_change: Callable[[], None]) -> None:
        self._bus = bus
        self._on_change = on_change
        self.version = 0  # counts changes of what it claims: views computed from it key on it
        self._config: FleetConfig | None = None
        self.inventories: dict[str, UnitInventory] = {}
        self._sorted: dict[str, HostUnits] = {}

    def _changed(self) -> None:
        self.version += 1
        self._on_change()

    def config_changed(self, config: FleetConfig) -> None:
        self._config = config
        for host in self.inventories:
            self._sort(host)
        self._changed()

    def units_of(self, host: str) -> HostUnits:
        return self._sorted.get(host, NOTHING)

    def claims(self, host: str) -> list[Claim]:
        """The units discovery made services of on `host`, vanished ones included."""
        return self.units_of(host).claimed

    def hosts(self) -> list[str]:
        return sorted(self._sorted)

    def claims_of(self, application: str) -> list[tuple[str, Claim]]:
        """(host, claim) for every unit discovery gave the application, vanished ones too."""
        return [
            (host, claim)
            for host, units in sorted(self._sorted.items())
            for claim in units.claimed
            if claim.application == application
        ]

    def services_of(self, application: str) -> dict[str, set[str]]:
        """Host → the application's services discovery found there, vanished ones left out."""
        found: dict[str, set[str]] = {}
        for host, units in self._sorted.items():
            names = {
                c.service for c in units.claimed if c.application == application and not c.vanished
            }
            if names:
                found[host] = names
        return found

    def problems(self) -> list[ConfigProblem]:
        """Rules that match no unit on any host they look on, and units two applications'
        rules claim; each at the place of the rule."""
        config = self._config
        if config is None:
            return []
        matched = set().union(*(units.matched_rules for units in self._sorted.values()))
        conflicts: dict[tuple[str, int, str], _ConflictSeen] = {}
        for host, units in sorted(self._sorted.items()):
            for c in units.conflicts:
                seen = conflicts.setdefault(
                    (c.also, c.rule_index, c.unit), _ConflictSeen(c.unit, c.kept, [])
                )
                seen.hosts.append(host)
        problems = []
        for app_name, app in sorted(config.applications.items()):
            for index, rule in enumerate(app.discover):
                where = config.rule_locations.get(rule_key(app_name, index), ("?", 0, 0))
                if (app_name, index) not in matched:
                    looked = [h for h in self._sorted if rule_applies(config, app, rule, h)]
                    message = (
                        f"discovery rule matches no unit on the {len(looked)} host(s) it looks on"
                        if looked
                        else "discovery rule looks on no host that has reported its units"
                    )
                    problems.append(ConfigProblem(*where, message))
        for (app_name, index, _unit), seen in sorted(conflicts.items()):
            where = config.rule_locations.get(rule_key(app_name, index), ("?", 0, 0))
            example = ", ".join(seen.hosts[:3]) + (", …" if len(seen.hosts) > 3 else "")
            message = (
                f"{seen.unit} is claimed by application {seen.kept} already, on "
                f"{len(seen.hosts)} host(s) ({example}); it stays with {seen.kept}"
            )
            problems.append(ConfigProblem(*where, message))
        return sorted(problems)

    async def watch(self) -> None:
        """One life of the watch (see bus.kvwatch); hosts whose key went away are dropped."""
        await watch_kv(self._bus, subjects.INVENTORY_BUCKET, ">", self._take, self._prune)

    async def _take(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._forget(key)
            return
        try:
            inventory = decode(UnitInventory, key, value)
        except MalformedMessage as err:
            self._drop(key, str(err))
            return
        if subjects.inventory_key(inventory.host) != key:
            self._drop(key, f"inventory names host {inventory.host!r}")
            return
        self.inventories[inventory.host] = inventory
        self._sort(inventory.host)
        self._changed()

    def _prune(self, present: set[str]) -> None:
        for host in [h for h in self.inventories if subjects.inventory_key(h) not in present]:
            self._forget(host)

    def _forget(self, host: str) -> None:
        self.inventories.pop(host, None)
        if self._sorted.pop(host, None) is not None:
            self._changed()

    def _sort(self, host: str) -> None:
        if self._config is not None:
            self._sorted[host] = sort_units(self._config, host, self.inventories[host].units)

    def _drop(self, key: str, why: str) -> None:
        self._bus.counters.inc("server.malformed_messages")
        log.warning("dropped inventory %s: %s", key, why)
