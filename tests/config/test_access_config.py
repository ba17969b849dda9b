"""The config's `access:` section: groups bound to roles within scopes, and every mistake in it
reported at its file, line and column."""

from __future__ import annotations

import pytest

from drover.config.errors import ConfigError
from drover.config.loader import load_files
from drover.model.access import Grant, Role

APPS = b"""\
applications:
  shop:
    hosts: [web-01]
    environment: staging
    services:
      web: {command: [web]}
"""


def problems_of(files: dict[str, bytes]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_files({"apps.yaml": APPS, **files}, revision="r1")
    return [str(problem) for problem in caught.value.problems]


def test_bindings_become_grants_and_files_merge() -> None:
    config = load_files(
        {
            "apps.yaml": APPS,
            "access/shop.yaml": (
                b"access:\n"
                b"  team-shop:\n"
                b"    - {role: operator, applications: [shop], environments: [staging]}\n"
                b"    - {role: viewer}\n"
            ),
            "access/ops.yaml": b"access:\n  /org/ops:\n    - role: admin\n",
        },
        revision="r1",
    )
    grants = {group: [b.grant() for b in binds] for group, binds in config.access.items()}
    assert grants == {
        "team-shop": [Grant(Role.OPERATOR, ("shop",), ("staging",)), Grant(Role.VIEWER)],
        "/org/ops": [Grant(Role.ADMIN)],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b"access:\n  team-shop:\n    - {role: boss}\n",
            "access.yaml:3:14: access.team-shop[0].role: must be one of 'viewer', 'operator', "
            "'approver', 'admin'",
        ),
        (
            b"access:\n  team-shop:\n    - {applications: [shop]}\n",
            "access.yaml:3:7: access.team-shop[0]: field required: 'role'",
        ),
        (
            b"access:\n  team-shop:\n    - {role: viewer, apps: [shop]}\n",
            "access.yaml:3:22: access.team-shop[0]: unknown field 'apps'",
        ),
        (
            b"access:\n  team-shop:\n    - {role: viewer, applications: []}\n",
            "access.yaml:3:36: access.team-shop[0].applications: List should have at least 1 "
            "item after validation, not 0",
        ),
        (
            b"access:\n  team-shop:\n    - {role: viewer, environments: ['[prod']}\n",
            "access.yaml:3:37: access.team-shop[0].environments[0]: invalid glob '[prod'",
        ),
        (
            b"access:\n  team shop:\n    - {role: viewer}\n",
            "access.yaml:2:3: access: invalid name 'team shop'",
        ),
        (
            b"access:\n  team-shop: {role: viewer}\n",
            "access.yaml:2:14: access.team-shop: must be a list",
        ),
    ],
)
def test_a_bad_binding_is_reported_where_it_is_written(text: bytes, expected: str) -> None:
    [problem] = problems_of({"access.yaml": text})
    assert problem.startswith(expected), problem


def test_a_group_bound_in_two_files_points_at_both() -> None:
    problems = problems_of(
        {
            "a.yaml": b"access:\n  ops:\n    - {role: admin}\n",
            "b.yaml": b"\naccess:\n  ops:\n    - {role: viewer}\n",
        }
    )
    assert problems == ["b.yaml:3:3: access.ops: already defined at a.yaml:2:3"]
