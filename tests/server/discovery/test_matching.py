"""Sorting a host's units into applications: rules, scopes, names, conflicts, vanished units."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from drover.bus.messages import UnitInfo
from drover.config.loader import load_files
from drover.config.schema import FleetConfig
from drover.model.status import Policy, TargetStatus
from drover.server.desired import desired_for_host
from drover.server.discovery.matching import service_name, sort_units

CONFIG = """
groups:
  web: {hosts: ["web-*"]}
  db: {hosts: ["db-*"]}
applications:
  shop:
    groups: [web]
    services:
      web: {command: [python3, app.py]}
      proxy: {provider: systemd, unit: haproxy.service}
    discover:
      - units: ["shop-*.service", "nginx.service"]
      - slice: shop.slice
        target: stopped
        policy: enforce
  billing:
    groups: [web]
    discover:
      - properties: {X-Drover-Application: billing}
      - units: ["shop-legacy.service"]
  pg:
    discover:
      - units: ["postgresql@*.service"]
        groups: [db]
"""


def config(text: str = CONFIG) -> FleetConfig:
    return load_files({"c.yaml": text.encode()}, "r1")


def unit(name: str, **fields: object) -> UnitInfo:
    return UnitInfo.model_validate({"unit": name, **fields})


def test_units_are_claimed_by_name_slice_and_drop_in_and_the_rest_is_unassigned() -> None:
    units = [
        unit("shop-api.service"),
        unit("nginx.service"),
        unit("cache.service", slice="shop.slice"),
        unit("invoices.service", properties={"X-Drover-Application": "billing"}),
        unit("haproxy.service"),
        unit("cron.service"),
        unit("ssh.socket"),
    ]
    sorted_ = sort_units(config(), "web-01", units)
    claimed = {(c.application, c.service, c.unit.unit) for c in sorted_.claimed}
    assert claimed == {
        ("shop", "shop-api", "shop-api.service"),
        ("shop", "nginx", "nginx.service"),
        ("shop", "cache", "cache.service"),
        ("billing", "invoices", "invoices.service"),
    }
    assert [(d.application, d.service) for d in sorted_.declared] == [("shop", "proxy")]
    assert [u.unit for u in sorted_.unassigned] == ["cron.service", "ssh.socket"]
    by_unit = {c.unit.unit: c for c in sorted_.claimed}
    assert by_unit["cache.service"].rule.target is TargetStatus.STOPPED
    assert by_unit["cache.service"].rule.policy is Policy.ENFORCE
    assert by_unit["nginx.service"].rule.policy is Policy.OBSERVE  # discovery observes by default


def test_a_rule_looks_only_where_it_or_its_application_runs() -> None:
    units = [unit("shop-api.service"), unit("postgresql@14-main.service")]
    on_db = sort_units(config(), "db-01", units)
    assert [c.application for c in on_db.claimed] == ["pg"]
    assert [u.unit for u in on_db.unassigned] == ["shop-api.service"]
    on_web = sort_units(config(), "web-01", units)
    assert [c.application for c in on_web.claimed] == ["shop"]


def test_every_criterion_of_a_rule_must_match() -> None:
    text = CONFIG.replace(
        "      - slice: shop.slice\n", "      - slice: shop.slice\n        units: ['c*']\n"
    )
    sorted_ = sort_units(
        config(text),
        "web-01",
        [unit("cache.service", slice="shop.slice"), unit("db.service", slice="shop.slice")],
    )
    assert [c.unit.unit for c in sorted_.claimed] == ["cache.service"]


def test_a_unit_two_applications_claim_stays_with_the_first_and_the_other_is_a_conflict() -> None:
    sorted_ = sort_units(config(), "web-01", [unit("shop-legacy.service")])
    assert [(c.application, c.unit.unit) for c in sorted_.claimed] == [
        ("billing", "shop-legacy.service")
    ]
    [conflict] = sorted_.conflicts
    assert (conflict.unit, conflict.kept, conflict.also, conflict.rule_index) == (
        "shop-legacy.service",
        "billing",
        "shop",
        0,
    )


def test_matched_rules_are_recorded_so_rules_that_match_nothing_can_be_reported() -> None:
    sorted_ = sort_units(config(), "web-01", [unit("nginx.service")])
    assert sorted_.matched_rules == {("shop", 0)}


def test_service_names_follow_the_unit_and_stay_the_same() -> None:
    assert service_name("nginx.service") == "nginx"
    assert service_name("logrotate.timer") == "logrotate-timer"
    odd = service_name("postgresql@14-main.service")
    assert odd.startswith("postgresql-14-main-") and odd == service_name(
        "postgresql@14-main.service"
    )
    assert service_name("Web.service").startswith("web-")
    assert service_name("nginx.service", {"nginx"}).startswith("nginx-")
    assert service_name("x" * 70 + ".service") != service_name("x" * 71 + ".service")


def test_a_discovered_unit_does_not_take_a_declared_services_name() -> None:
    sorted_ = sort_units(config(), "web-01", [unit("web.service", slice="shop.slice")])
    [claim] = sorted_.claimed
    assert claim.service != "web" and claim.service.startswith("web-")


def test_vanished_units_stay_claimed_but_are_not_desired() -> None:
    gone = datetime(2026, 11, 23, tzinfo=UTC)
    units = [unit("nginx.service"), unit("shop-api.service", vanished_since=gone)]
    cfg = config()
    sorted_ = sort_units(cfg, "web-01", units)
    assert {c.service: c.vanished for c in sorted_.claimed} == {"nginx": False, "shop-api": True}
    desired = desired_for_host(cfg, "web-01", claims=sorted_.claimed)
    discovered = [s for s in desired.services if s.unit == "nginx.service"]
    assert [(s.application, s.service, s.provider, s.policy) for s in discovered] == [
        ("shop", "nginx", "systemd", Policy.OBSERVE)
    ]
    assert not any(s.unit == "shop-api.service" for s in desired.services)


UNIT_NAMES = st.from_regex(r"[a-z][a-z0-9@_-]{0,12}\.(service|socket|timer)", fullmatch=True)


@given(st.lists(UNIT_NAMES, unique=True, max_size=25), st.sampled_from(["web-01", "db-01", "x"]))
def test_every_unit_lands_in_exactly_one_place_with_a_unique_service_name(
    names: list[str], host: str
) -> None:
    sorted_ = sort_units(config(), host, [unit(n, slice="shop.slice") for n in names])
    placed = (
        [d.unit.unit for d in sorted_.declared]
        + [c.unit.unit for c in sorted_.claimed]
        + [u.unit for u in sorted_.unassigned]
    )
    assert sorted(placed) == sorted(names)
    per_app: dict[str, list[str]] = {}
    for d in sorted_.declared:
        per_app.setdefault(d.application, []).append(d.service)
    for c in sorted_.claimed:
        per_app.setdefault(c.application, []).append(c.service)
    for app, services in per_app.items():
        declared = set(config().applications[app].services) - {
            d.service for d in sorted_.declared if d.application == app
        }
        assert len(services) == len(set(services)), services
        assert not (set(c.service for c in sorted_.claimed if c.application == app) & declared)


def test_a_rule_looking_beyond_the_application_never_takes_a_declared_name() -> None:
    text = CONFIG.replace(
        "  billing:\n", "      - units: [web.service]\n        hosts: ['db-*']\n  billing:\n"
    )
    on_db = sort_units(config(text), "db-01", [unit("web.service")])
    [claim] = on_db.claimed
    assert claim.application == "shop" and claim.service.startswith("web-")
