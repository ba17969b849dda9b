from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.config.loader import load_files
from drover.config.schema import FleetConfig
from drover.server.errors import NotFound, Unprocessable
from drover.server.targeting import Target, format_labels, parse_labels, resolve


def _config() -> FleetConfig:
    text = (
        "groups:\n  web: {hosts: ['web-*'], labels: {env: prod}}\n"
        "hosts:\n  web-01: {labels: {env: prod}}\n  web-02: {labels: {env: test}}\n"
        "applications:\n"
        "  shop:\n    groups: [web]\n    services:\n"
        "      web: {command: [a]}\n      worker: {command: [b]}\n"
        "  tools:\n    hosts: ['ops-*']\n    services:\n      cron: {command: [c]}\n"
    )
    return load_files({"c.yaml": text.encode()}, "r1")


def test_an_application_targets_every_host_it_runs_on_and_all_its_services() -> None:
    # No service named: each host acts on every service of the application it runs.
    target = resolve(_config(), ["web-03"], "shop", None, None)
    assert target == Target("shop", [], ["web-01"])


def test_a_named_service_and_host_narrow_the_target() -> None:
    target = resolve(_config(), [], "shop", "web", ["web-01"])
    assert target == Target("shop", ["web"], ["web-01"])


def test_hosts_that_report_in_count_as_well_as_hosts_in_config() -> None:
    assert resolve(_config(), ["ops-1"], "tools", None, None).hosts == ["ops-1"]


@pytest.mark.parametrize(
    ("app", "service", "hosts", "error", "message"),
    [
        ("nope", None, None, NotFound, "no application 'nope'"),
        ("shop", "db", None, NotFound, "application 'shop' has no service 'db'"),
        ("shop", None, ["web-02"], NotFound, "does not run on host 'web-02'"),
        ("tools", None, None, Unprocessable, "runs on no known host"),
    ],
)
def test_what_cannot_be_targeted_says_why(
    app: str, service: str | None, hosts: list[str] | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve(_config(), [], app, service, hosts)


DISCOVERED = {"web-01": {"nginx"}, "web-05": {"nginx", "varnish"}, "db-01": {"pg"}}


def test_a_discovered_service_targets_the_hosts_it_was_found_on() -> None:
    target = resolve(_config(), [], "shop", "nginx", None, DISCOVERED)
    assert target == Target("shop", ["nginx"], ["web-01", "web-05"])


def test_a_whole_application_includes_hosts_where_only_discovery_found_something() -> None:
    target = resolve(_config(), [], "shop", None, None, DISCOVERED)
    assert target.hosts == ["db-01", "web-01", "web-05"]
    assert target.services == []


def test_a_declared_service_also_runs_where_discovery_found_one_of_its_name() -> None:
    assert resolve(_config(), [], "shop", "web", None, {"web-07": {"web"}}).hosts == [
        "web-01",
        "web-07",
    ]


def test_a_discovered_service_on_a_host_that_lacks_it_is_not_found() -> None:
    with pytest.raises(NotFound, match="service 'varnish' of application 'shop' does not run"):
        resolve(_config(), [], "shop", "varnish", ["web-01"], DISCOVERED)


def test_an_application_with_only_rules_and_nothing_found_runs_nowhere() -> None:
    text = "applications:\n  a:\n    hosts: ['*']\n    discover: [{units: [x.service]}]\n"
    config = load_files({"c.yaml": text.encode()}, "r1")
    with pytest.raises(Unprocessable, match="its discovery rules have found no unit yet"):
        resolve(config, ["h1"], "a", None, None, {})


# Selecting by host group and labels


def _fleet() -> FleetConfig:
    text = (
        "groups:\n"
        "  web: {hosts: ['web-*']}\n"
        "  zrh: {labels: {dc: zrh}}\n"
        "  canary: {hosts: ['web-01']}\n"
        "hosts:\n"
        "  web-01: {labels: {env: prod, dc: zrh}}\n"
        "  web-02: {labels: {env: prod, dc: gva}}\n"
        "  web-03: {labels: {env: test, dc: zrh}}\n"
        "applications:\n"
        "  shop:\n    groups: [web]\n    services:\n"
        "      web: {command: [a]}\n      worker: {command: [b]}\n"
    )
    return load_files({"c.yaml": text.encode()}, "r1")


def _select(
    hosts: list[str] | None = None,
    groups: list[str] | None = None,
    labels: dict[str, str] | None = None,
    service: str | None = None,
) -> list[str]:
    # web-04 reports in but has no entry in config: it carries no labels.
    known = ["web-04"]
    return resolve(_fleet(), known, "shop", service, hosts, groups=groups, labels=labels).hosts


def test_without_groups_or_labels_every_host_it_runs_on_is_selected() -> None:
    assert _select() == ["web-01", "web-02", "web-03", "web-04"]


def test_a_group_selects_the_hosts_in_it() -> None:
    assert _select(groups=["zrh"]) == ["web-01", "web-03"]


def test_several_groups_select_the_hosts_in_any_of_them() -> None:
    assert _select(groups=["canary", "zrh"]) == ["web-01", "web-03"]
    assert _select(groups=["canary"]) == ["web-01"]


def test_labels_select_the_hosts_that_carry_every_one_of_them() -> None:
    assert _select(labels={"env": "prod"}) == ["web-01", "web-02"]
    assert _select(labels={"env": "prod", "dc": "zrh"}) == ["web-01"]


def test_hosts_groups_and_labels_must_all_hold() -> None:
    assert _select(groups=["zrh"], labels={"env": "prod"}) == ["web-01"]
    # A named host outside the labels is left out, not acted on.
    assert _select(hosts=["web-01", "web-02"], labels={"dc": "zrh"}) == ["web-01"]


def test_a_selection_narrows_a_service_and_the_hosts_discovery_found() -> None:
    found = {"web-03": {"nginx"}, "web-02": {"nginx"}}
    target = resolve(_fleet(), [], "shop", "nginx", None, found, groups=["zrh"])
    assert target == Target("shop", ["nginx"], ["web-03"])


def test_an_unknown_group_is_not_found() -> None:
    with pytest.raises(NotFound, match="no host group 'nope'"):
        _select(groups=["zrh", "nope"])


def test_a_named_host_that_does_not_run_it_is_still_not_found_with_labels() -> None:
    with pytest.raises(NotFound, match="does not run on host 'db-01'"):
        _select(hosts=["db-01"], labels={"env": "prod"})


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            {"groups": ["canary"], "labels": {"env": "test"}},
            "application 'shop' runs on no host in group 'canary' with labels env=test: "
            "the selection matches nothing",
        ),
        (
            {"labels": {"env": "prod", "dc": "lon"}},
            "application 'shop' runs on no host with labels dc=lon,env=prod: ",
        ),
        (
            {"hosts": ["web-02"], "groups": ["zrh", "canary"], "service": "web"},
            "service 'web' of application 'shop' runs on no host among web-02 in groups "
            "'zrh', 'canary': ",
        ),
    ],
)
def test_a_selection_that_leaves_no_host_says_what_selected_nothing(
    selection: dict[str, Any], message: str
) -> None:
    with pytest.raises(Unprocessable) as caught:
        _select(**selection)
    assert caught.value.message.startswith(message)


# The k=v,k=v form of labels


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("env=prod", {"env": "prod"}),
        ("env=prod,dc=zrh", {"env": "prod", "dc": "zrh"}),
        (" env = prod , dc=zrh ", {"env": "prod", "dc": "zrh"}),
        ("tier=", {"tier": ""}),
        ("query=a=b", {"query": "a=b"}),
    ],
)
def test_labels_are_read_from_key_value_pairs(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "labels: none given; write key=value[,key=value…]"),
        ("  ", "labels: none given; write key=value[,key=value…]"),
        ("env", "labels 'env': 'env' is not key=value"),
        ("env=prod,dc", "labels 'env=prod,dc': 'dc' is not key=value"),
        ("=prod", "labels '=prod': '=prod' has an empty key"),
        ("env=prod,,dc=zrh", "labels 'env=prod,,dc=zrh': an empty entry (a stray comma?)"),
        ("env=prod,", "labels 'env=prod,': an empty entry (a stray comma?)"),
        ("env=prod,env=test", "labels 'env=prod,env=test': 'env' is given twice"),
    ],
)
def test_malformed_labels_are_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_labels(text)
    assert caught.value.message == message
    assert caught.value.status_code == 422


label_part = st.from_regex(r"[a-z0-9][a-z0-9./_-]{0,10}", fullmatch=True)


@given(st.dictionaries(label_part, label_part | st.just(""), min_size=1, max_size=6))
def test_labels_written_out_read_back_the_same(labels: dict[str, str]) -> None:
    assert parse_labels(format_labels(labels)) == labels
