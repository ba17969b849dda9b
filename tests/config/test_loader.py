"""Loading a set of YAML files into one FleetConfig."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.config import loader
from drover.config.errors import ConfigError, ConfigProblem
from drover.config.loader import json_schema, load_files, load_snapshot
from drover.config.schema import Application, FleetConfig, GroupSpec, HostSpec, ServiceSpec
from drover.config.source import Snapshot
from drover.model.status import TargetStatus

SHOP = b"""\
applications:
  shop:
    owners: [team-shop]
    environment: production
    groups: [web]
    services:
      web:
        command: [python3, -m, http.server, "8101"]
        env: {PORT: "8101"}
        stop_timeout: 2.5
"""

CART = b"""\
applications:
  cart:
    hosts: ["cart-*"]
    services:
      api: {command: [cart-api], target: stopped, cwd: /srv/cart}
"""

FLEET = b"""\
hosts:
  web-01: {labels: {env: prod, dc: zrh}}
  cart-01: {}
groups:
  web: {hosts: ["web-*"], labels: {env: prod}}
"""


def problems_of(files: dict[str, bytes]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_files(files, revision="r1")
    return [str(problem) for problem in caught.value.problems]


def test_a_valid_multi_file_config_is_merged_into_one_fleet_config() -> None:
    files = {"apps/shop.yaml": SHOP, "apps/cart.yml": CART, "fleet.yaml": FLEET}

    config = load_files(files, revision="abc123")

    assert config == FleetConfig(
        revision="abc123",
        applications={
            "cart": Application(
                hosts=["cart-*"],
                services={
                    "api": ServiceSpec(
                        command=["cart-api"], target=TargetStatus.STOPPED, cwd="/srv/cart"
                    )
                },
            ),
            "shop": Application(
                owners=["team-shop"],
                environment="production",
                groups=["web"],
                services={
                    "web": ServiceSpec(
                        command=["python3", "-m", "http.server", "8101"],
                        env={"PORT": "8101"},
                        stop_timeout=2.5,
                    )
                },
            ),
        },
        hosts={
            "web-01": HostSpec(labels={"env": "prod", "dc": "zrh"}),
            "cart-01": HostSpec(),
        },
        groups={"web": GroupSpec(hosts=["web-*"], labels={"env": "prod"})},
    )


def test_loaded_values_are_plain_python_types_not_ruamel_subclasses() -> None:
    config = load_files({"shop.yaml": SHOP, "fleet.yaml": FLEET}, revision="r1")

    service = config.applications["shop"].services["web"]
    assert type(service.stop_timeout) is float
    assert all(type(arg) is str for arg in service.command)


def test_empty_files_and_comment_only_files_contribute_nothing() -> None:
    files = {"empty.yaml": b"", "comments.yaml": b"# nothing here yet\n", "fleet.yaml": FLEET}

    config = load_files(files, revision="r1")

    assert config.applications == {}
    assert set(config.hosts) == {"web-01", "cart-01"}


def test_hidden_files_and_non_yaml_files_are_ignored() -> None:
    files = {
        ".hidden.yaml": b"- not a mapping",
        ".github/workflow.yaml": b"- not a mapping",
        "README.md": b"- not a mapping",
        "fleet.yaml": FLEET,
    }

    assert load_files(files, revision="r1") == load_files({"fleet.yaml": FLEET}, revision="r1")


def test_the_same_application_in_two_files_points_at_both_definitions() -> None:
    problems = problems_of({"a.yaml": SHOP, "b.yaml": SHOP, "fleet.yaml": FLEET})

    assert problems == ["b.yaml:2:3: applications.shop: already defined at a.yaml:2:3"]


def test_the_same_host_or_group_in_two_files_is_an_error_at_the_second() -> None:
    problems = problems_of({"a.yaml": FLEET, "z.yaml": b"\n" + FLEET})

    assert problems == [
        "z.yaml:3:3: hosts.web-01: already defined at a.yaml:2:3",
        "z.yaml:4:3: hosts.cart-01: already defined at a.yaml:3:3",
        "z.yaml:6:3: groups.web: already defined at a.yaml:5:3",
    ]


def test_a_group_defined_in_another_file_is_known() -> None:
    assert "web" in load_files({"shop.yaml": SHOP, "fleet.yaml": FLEET}, revision="r1").groups


def test_an_undefined_group_is_reported_at_the_list_item() -> None:
    assert problems_of({"shop.yaml": SHOP}) == [
        "shop.yaml:5:14: applications.shop.groups[0]: unknown group 'web'"
    ]


def test_groups_are_not_called_unknown_while_another_file_cannot_be_parsed() -> None:
    # The broken file might be the one that defines them.
    problems = problems_of({"shop.yaml": SHOP, "fleet.yaml": b"groups: {web: [\n"})

    assert [problem.split(":")[0] for problem in problems] == ["fleet.yaml"]


def test_the_error_message_has_one_problem_per_line() -> None:
    files = {"a.yaml": b"hosts: []\n", "b.yaml": b"groups: 3\n"}

    with pytest.raises(ConfigError) as caught:
        load_files(files, revision="r1")

    assert (
        str(caught.value)
        == "a.yaml:1:8: hosts: must be a mapping\nb.yaml:1:9: groups: must be a mapping"
    )


def test_a_file_nested_too_deep_to_parse_is_a_problem_of_that_file_alone() -> None:
    files = {"deep.yaml": b"hosts:\n  h: {labels: " + b"{a: " * 1000 + b"}", "cart.yaml": CART}

    with pytest.raises(ConfigError) as caught:
        load_files(files, revision="r1")

    assert caught.value.problems == (
        ConfigProblem(
            "deep.yaml",
            1,
            1,
            "nesting too deep: lists and mappings nested more levels than can be read",
        ),
    )


def test_a_file_nested_too_deep_to_validate_is_a_problem_at_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def too_deep(node: object) -> object:
        raise RecursionError

    # Parsing needs more stack per level than validating, so only this reaches validation.
    monkeypatch.setattr(loader, "_plain", too_deep)

    with pytest.raises(ConfigError) as caught:
        load_files({"cart.yaml": b"# the cart\n" + CART}, revision="r1")

    assert [str(problem) for problem in caught.value.problems] == [
        "cart.yaml:2:1: nesting too deep: lists and mappings nested more levels than can be read"
    ]


def test_a_snapshot_loads_with_its_revision() -> None:
    snapshot = Snapshot(revision="deadbeef", files={"fleet.yaml": FLEET})

    assert load_snapshot(snapshot).revision == "deadbeef"


def test_the_json_schema_describes_one_file_and_forbids_unknown_fields() -> None:
    schema = json_schema()

    assert set(schema["properties"]) >= {"applications", "hosts", "groups", "approvals"}
    assert schema["additionalProperties"] is False


YAMLISH = st.text(alphabet=st.sampled_from([*"ab-:{}[],'\"*&!#|> \n\t0.", "\u00e9"]))


def problems_or_none(files: dict[str, bytes]) -> tuple[ConfigProblem, ...] | None:
    try:
        load_files(files, revision="r1")
    except ConfigError as err:
        return err.problems
    return None


@given(content=st.one_of(st.binary(max_size=200), YAMLISH.map(str.encode)))
def test_any_content_either_loads_or_gives_problems_inside_the_file(content: bytes) -> None:
    problems = problems_or_none({"f.yaml": content})

    assert problems != ()
    for problem in problems or ():
        assert problem.file == "f.yaml"
        assert 1 <= problem.line <= content.count(b"\n") + 2
        assert problem.column >= 1
