import pytest

from drover.config.loader import load_files
from drover.config.schema import FleetConfig
from drover.server.errors import NotFound, Unprocessable
from drover.server.targeting import Target, resolve


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
