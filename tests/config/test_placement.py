"""Which applications run on which host."""

from __future__ import annotations

from drover.config.placement import applications_on, host_labels, in_group, runs_on
from drover.config.schema import Application, FleetConfig, GroupSpec, HostSpec, ServiceSpec

WEB = ServiceSpec(command=["serve"])


def app(*, hosts: list[str] | None = None, groups: list[str] | None = None) -> Application:
    return Application(hosts=hosts or [], groups=groups or [], services={"web": WEB})


def fleet(**applications: Application) -> FleetConfig:
    return FleetConfig(
        revision="r1",
        applications=applications,
        hosts={
            "web-01": HostSpec(labels={"env": "prod", "dc": "zrh"}),
            "web-02": HostSpec(labels={"env": "test"}),
            "db-01": HostSpec(labels={"env": "prod"}),
        },
        groups={
            "prod-web": GroupSpec(hosts=["web-*"], labels={"env": "prod"}),
            "prod": GroupSpec(labels={"env": "prod"}),
        },
    )


def test_a_group_matches_hosts_by_glob_and_requires_every_label() -> None:
    group = GroupSpec(hosts=["web-*", "api-?"], labels={"env": "prod", "dc": "zrh"})

    assert in_group(group, "web-01", {"env": "prod", "dc": "zrh", "rack": "7"})
    assert in_group(group, "api-1", {"env": "prod", "dc": "zrh"})
    assert not in_group(group, "web-01", {"env": "prod"})
    assert not in_group(group, "db-01", {"env": "prod", "dc": "zrh"})


def test_a_group_without_host_globs_matches_every_host_with_its_labels() -> None:
    assert in_group(GroupSpec(labels={"env": "prod"}), "anything", {"env": "prod"})


def test_glob_matching_is_case_sensitive() -> None:
    assert not in_group(GroupSpec(hosts=["web-*"]), "WEB-01", {})


def test_an_unlisted_host_has_no_labels() -> None:
    assert host_labels(fleet(), "ghost-01") == {}


def test_an_application_runs_where_its_host_globs_match() -> None:
    config = fleet()

    assert runs_on(config, app(hosts=["db-*"]), "db-01")
    assert runs_on(config, app(hosts=["db-*"]), "db-99")  # listed in `hosts:` or not
    assert not runs_on(config, app(hosts=["db-*"]), "web-01")


def test_an_application_runs_on_the_hosts_of_its_groups_by_their_labels() -> None:
    config = fleet()
    shop = app(groups=["prod-web"])

    assert runs_on(config, shop, "web-01")
    assert not runs_on(config, shop, "web-02")  # label env=test
    assert not runs_on(config, shop, "db-01")  # glob


def test_an_undefined_group_places_nothing() -> None:
    assert not runs_on(fleet(), app(groups=["nowhere"]), "web-01")


def test_applications_on_a_host_are_listed_in_name_order() -> None:
    config = fleet(
        shop=app(groups=["prod-web"]),
        backup=app(groups=["prod"]),
        db=app(hosts=["db-*"]),
    )

    assert list(applications_on(config, "web-01")) == ["backup", "shop"]
    assert list(applications_on(config, "db-01")) == ["backup", "db"]
    assert applications_on(config, "web-02") == {}
