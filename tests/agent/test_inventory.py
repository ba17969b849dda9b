"""The pure parts of the unit inventory: reading `X-Drover-*` keys, which units and signals
count, and the bookkeeping of vanished units. Without systemd; see systemd/test_inventory.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drover.agent.inventory import Inventory, merge, next_expiry, same_content
from drover.agent.providers.systemd.inventory import (
    UnitLister,
    assignments,
    discoverable,
    drover_keys,
    may_change_set,
)
from drover.agent.providers.systemd.transient import is_transient_unit_name
from drover.bus.connection import Bus, BusSettings
from drover.bus.messages import UnitInfo, UnitInventory, encode
from drover.ops.clock import SystemClock
from drover.ops.counters import Counters

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)

FRAGMENT = """\
# X-Drover-Commented=no
[Unit]
Description=Shop web
X-Drover-Application=shop

[Service]
ExecStart=/usr/bin/shop \\
    --port 8080
X-Drover-Tier = web
X-Drover-Team=a \\
  ; a comment inside a continued value is dropped
  b
X-Drover-Gone=for now
NotOurs=1
"""
DROP_IN = """\
[Service]
X-Drover-Tier=api
X-Drover-Gone=
"""


def unit(name: str, vanished_since: datetime | None = None, **properties: str) -> UnitInfo:
    return UnitInfo(unit=name, properties=properties, vanished_since=vanished_since)


def test_every_assignment_of_a_unit_file_is_read_in_order_with_continuations_joined() -> None:
    assert list(assignments(FRAGMENT)) == [
        ("Description", "Shop web"),
        ("X-Drover-Application", "shop"),
        ("ExecStart", "/usr/bin/shop  --port 8080"),
        ("X-Drover-Tier", "web"),
        ("X-Drover-Team", "a  b"),
        ("X-Drover-Gone", "for now"),
        ("NotOurs", "1"),
    ]


def test_a_file_that_ends_inside_a_continued_value_keeps_what_is_there() -> None:
    assert list(assignments("[Unit]\nX-Drover-A=1 \\\n")) == [("X-Drover-A", "1")]


def test_drover_keys_come_from_any_section_and_a_drop_in_overrides_or_clears_them() -> None:
    assert drover_keys([FRAGMENT]) == {
        "X-Drover-Application": "shop",
        "X-Drover-Tier": "web",
        "X-Drover-Team": "a  b",
        "X-Drover-Gone": "for now",
    }
    assert drover_keys([FRAGMENT, DROP_IN]) == {
        "X-Drover-Application": "shop",
        "X-Drover-Tier": "api",
        "X-Drover-Team": "a  b",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nginx.service", True),
        ("nginx.socket", True),
        ("logrotate.timer", True),
        ("getty@tty1.service", True),  # an instance is a unit of its own
        ("getty@.service", False),  # a template is not
        ("multi-user.target", False),
        ("home.mount", False),
        (".service", False),
    ],
)
def test_discovery_looks_at_services_sockets_and_timers_but_not_templates(
    name: str, expected: bool
) -> None:
    assert discoverable(name) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("drover-shop-web.service", True),
        ("drover-my-app-my-svc.service", True),
        ("drover-agent.service", False),  # the agent's own unit: no service part
        ("drover-server.service", False),
        ("drover-shop-web.socket", False),
        ("drover-Shop-web.service", False),  # not a drover name
        ("nginx.service", False),
    ],
)
def test_the_agents_transient_units_are_known_by_their_names(name: str, expected: bool) -> None:
    assert is_transient_unit_name(name) is expected


def test_only_signals_that_can_change_the_set_of_units_count() -> None:
    listed, with_file = {"a.service", "b.service"}, {"a.service"}
    assert may_change_set("Reloading", None, listed, with_file)
    assert may_change_set("UnitFilesChanged", None, listed, with_file)
    assert may_change_set("UnitNew", "new.service", listed, with_file)
    assert not may_change_set("UnitNew", "a.service", listed, with_file)  # listed already
    assert may_change_set("UnitRemoved", "b.service", listed, with_file)  # no file: gone
    assert not may_change_set("UnitRemoved", "a.service", listed, with_file)  # its file stays
    assert not may_change_set("UnitNew", "user.slice", listed, with_file)
    assert not may_change_set("UnitNew", "drover-shop-web.service", listed, with_file)


def test_a_unit_no_longer_listed_is_vanished_since_it_was_first_missed() -> None:
    first = merge([], [unit("a.service"), unit("b.service")], T0, WEEK)
    assert first == [unit("a.service"), unit("b.service")]
    later = T0 + timedelta(hours=1)
    second = merge(first, [unit("b.service"), unit("c.service")], later, WEEK)
    assert second == [unit("a.service", later), unit("b.service"), unit("c.service")]
    third = merge(second, [unit("c.service")], later + timedelta(hours=1), WEEK)
    assert third == [
        unit("a.service", later),  # not moved: vanished when it was first missed
        unit("b.service", later + timedelta(hours=1)),
        unit("c.service"),
    ]


def test_a_vanished_unit_keeps_what_was_known_of_it_and_loses_the_mark_when_back() -> None:
    known = [UnitInfo(unit="a.service", description="A", slice="shop.slice")]
    gone = merge(known, [], T0, WEEK)
    assert gone == [
        UnitInfo(unit="a.service", description="A", slice="shop.slice", vanished_since=T0)
    ]
    back = merge(gone, [UnitInfo(unit="a.service", description="A again")], T0, WEEK)
    assert back == [UnitInfo(unit="a.service", description="A again")]


def test_an_ephemeral_unit_that_goes_is_gone_unless_desired_state_names_it() -> None:
    job = UnitInfo(unit="run-u7.service", ephemeral=True)
    login = UnitInfo(unit="user@1000.service", ephemeral=True)
    pg = UnitInfo(unit="postgresql@14-main.service", ephemeral=True)
    previous = [job, login, pg, unit("a.service")]
    gone = merge(previous, [], T0, WEEK, wanted={"postgresql@14-main.service"})
    assert gone == [unit("a.service", T0), pg.model_copy(update={"vanished_since": T0})]


def test_vanished_units_are_dropped_after_the_retention() -> None:
    gone = [unit("a.service", T0), unit("b.service", T0 + timedelta(days=1))]
    assert next_expiry(gone, WEEK) == T0 + WEEK
    assert merge(gone, [], T0 + WEEK - timedelta(seconds=1), WEEK) == gone
    assert merge(gone, [], T0 + WEEK, WEEK) == [unit("b.service", T0 + timedelta(days=1))]
    assert next_expiry([unit("c.service")], WEEK) is None


def test_inventories_are_the_same_whenever_they_were_taken() -> None:
    a = UnitInventory(host="h1", taken_at=T0, units=[unit("a.service", X_Drover_A="1")])
    later = a.model_copy(update={"taken_at": T0 + timedelta(hours=1)})
    assert same_content(a, later)
    assert not same_content(a, a.model_copy(update={"units": [unit("a.service")]}))
    assert not same_content(a, a.model_copy(update={"host": "h2"}))
    assert not same_content(None, a)
    assert same_content(None, None)


def _inventory_at(path: Path) -> Inventory:
    """Neither NATS nor systemd is asked for anything here: only the saved file is read."""
    lister = UnitLister(None, Path("/"))
    return Inventory("h1", Bus(BusSettings(), Counters()), lister, path, SystemClock())


def test_the_saved_inventory_is_taken_up_unless_broken_or_another_hosts(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    assert _inventory_at(path).current is None
    saved = UnitInventory(host="h1", taken_at=T0, units=[unit("a.service", T0)])
    path.write_bytes(encode(saved))
    assert _inventory_at(path).current == saved
    path.write_bytes(encode(saved.model_copy(update={"host": "h2"})))
    assert _inventory_at(path).current is None
    path.write_bytes(b'{"v": 1, "host": "h1"')
    assert _inventory_at(path).current is None
