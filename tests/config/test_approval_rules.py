"""`approvals:` in the config: rules from every file become policies; every mistake in one is
reported at its file:line:col."""

from __future__ import annotations

import pytest

from drover.config.errors import ConfigError
from drover.config.loader import load_files
from drover.model.approval import ApprovalPolicy

SHOP = b"""applications:
  shop:
    environment: production
    hosts: ['*']
    services: {web: {command: [sleep, '1']}}
"""


def problems(files: dict[str, bytes]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_files({"shop.yaml": SHOP, **files}, "r1")
    return [str(p) for p in raised.value.problems]


def test_rules_of_every_file_become_policies_named_by_their_place_when_unnamed() -> None:
    files = {
        "shop.yaml": SHOP,
        "a.yaml": b"""approvals:
  - environments: [production]
    kinds: [restart, "command:*"]
    required: 2
    from_groups: [ops-leads]
    open_for: 14400
""",
        "b.yaml": b"approvals:\n  - {name: everything}\n",
    }
    assert load_files(files, "r1").approvals == [
        ApprovalPolicy(
            name="a.yaml:2",
            environments=("production",),
            kinds=("restart", "command:*"),
            required=2,
            from_groups=("ops-leads",),
            open_for_s=14400,
        ),
        ApprovalPolicy(name="everything"),
    ]


def test_no_rules_no_policies() -> None:
    assert load_files({"shop.yaml": SHOP}, "r1").approvals == []


def test_each_mistake_in_a_rule_is_reported_where_it_is() -> None:
    rules = b"""approvals:
  - kinds: [restrat, "command:", "shop["]
    applications: []
    environments: [Production]
    required: 0
    open_for: 0
    frm_groups: [ops]
"""
    assert problems({"rules.yaml": rules}) == [
        "rules.yaml:2:13: approvals[0].kinds[0]: unknown action kind 'restrat': expected start, "
        "stop, restart, ping or command:<name> (globs allowed)",
        "rules.yaml:2:22: approvals[0].kinds[1]: 'command:' needs a command name or glob, "
        "e.g. command:*",
        "rules.yaml:2:34: approvals[0].kinds[2]: invalid glob 'shop[': '[' at position 5 is "
        "never closed",
        "rules.yaml:3:19: approvals[0].applications: List should have at least 1 item after "
        "validation, not 0",
        "rules.yaml:4:20: approvals[0].environments[0]: invalid name 'Production' "
        r"(must match ^[a-z0-9_*?\[\]!-]{1,100}$)",
        "rules.yaml:5:15: approvals[0].required: Input should be greater than or equal to 1",
        "rules.yaml:6:15: approvals[0].open_for: Input should be greater than or equal to 1",
        "rules.yaml:7:5: approvals[0]: unknown field 'frm_groups'",
    ]


def test_two_rules_with_one_name_are_an_error_pointing_at_both() -> None:
    found = problems(
        {
            "a.yaml": b"approvals:\n  - name: prod\n",
            "b.yaml": b"approvals:\n  - {required: 1}\n  - name: prod\n",
        }
    )
    assert found == ["b.yaml:3:5: approvals[1].name: 'prod' already names the rule at a.yaml:2:5"]
