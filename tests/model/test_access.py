"""Roles, scopes and the question every request asks: may this principal do this, here?"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.model.access import (
    Grant,
    Permission,
    Principal,
    Role,
    is_group_name,
    is_user_name,
    least_role,
)

P = Permission


def principal(*grants: Grant) -> Principal:
    return Principal("alice", frozenset(), grants, via="token")


def test_each_role_carries_exactly_its_permissions() -> None:
    assert {role: role.permissions for role in Role} == {
        Role.VIEWER: {P.READ},
        Role.OPERATOR: {P.READ, P.ACT},
        Role.APPROVER: {P.READ, P.APPROVE, P.AUDIT},
        Role.ADMIN: set(Permission),
    }


def test_a_denial_names_the_smallest_role_that_would_do() -> None:
    assert {p: least_role(p) for p in Permission} == {
        P.READ: Role.VIEWER,
        P.ACT: Role.OPERATOR,
        P.APPROVE: Role.APPROVER,
        P.AUDIT: Role.APPROVER,
        P.ADMIN: Role.ADMIN,
    }


@pytest.mark.parametrize(
    ("grant", "application", "environment", "covered"),
    [
        (Grant(Role.VIEWER), "shop", "production", True),
        (Grant(Role.VIEWER, ("shop",)), "shop", "production", True),
        (Grant(Role.VIEWER, ("shop",)), "shopping", "production", False),
        (Grant(Role.VIEWER, ("shop-*",)), "shop-api", "staging", True),
        (Grant(Role.VIEWER, ("*",), ("staging",)), "shop", "staging", True),
        (Grant(Role.VIEWER, ("*",), ("staging",)), "shop", "production", False),
        (Grant(Role.VIEWER, ("*",), ("Staging",)), "shop", "staging", False),  # case counts
        (Grant(Role.VIEWER, ("cart", "shop"), ("dev", "stag*")), "shop", "staging", True),
        # an application the config does not know: only a grant for every environment
        (Grant(Role.VIEWER, ("shop",)), "shop", None, True),
        (Grant(Role.VIEWER, ("shop",), ("staging",)), "shop", None, False),
        # nothing in particular (the audit, users, decommissioning): only unscoped grants
        (Grant(Role.ADMIN), None, None, True),
        (Grant(Role.ADMIN, ("*",), ("staging",)), None, None, False),
        (Grant(Role.ADMIN, ("shop",)), None, None, False),
    ],
)
def test_a_grant_covers_what_its_globs_match(
    grant: Grant, application: str | None, environment: str | None, covered: bool
) -> None:
    assert grant.covers(application, environment) is covered


def test_a_principal_may_what_one_of_its_grants_allows_where_it_applies() -> None:
    olga = principal(Grant(Role.OPERATOR, ("shop",), ("staging",)), Grant(Role.VIEWER))

    assert olga.may(P.ACT, "shop", "staging")
    assert not olga.may(P.ACT, "shop", "production")
    assert olga.may(P.READ, "shop", "production")  # the unscoped viewer grant
    assert olga.may(P.READ)
    assert not olga.may(P.AUDIT)
    assert olga.may_somewhere(P.ACT) and not olga.may_somewhere(P.APPROVE)
    assert not principal().may(P.READ, "shop", "staging")


def test_grants_describe_themselves_and_survive_json() -> None:
    grant = Grant(Role.OPERATOR, ("shop", "cart-*"), ("staging",))
    assert grant.describe() == "operator on shop,cart-* in staging"
    assert Grant(Role.ADMIN).describe() == "admin"
    assert Grant.from_json(grant.to_json()) == grant
    assert Grant.from_json({"role": "viewer"}) == Grant(Role.VIEWER)


@given(st.sampled_from(list(Role)), st.sampled_from(list(Permission)), st.text(max_size=20))
def test_an_unscoped_grant_covers_every_application(
    role: Role, permission: Permission, application: str
) -> None:
    assert principal(Grant(role)).may(permission, application, "any") is (
        permission in role.permissions
    )


def test_names_of_users_and_groups() -> None:
    assert all(map(is_user_name, ["alice", "alice@example.com", "ci-bot", "A.B+c"]))
    assert not any(map(is_user_name, ["", "-x", "a b", "a/b", "x" * 201]))
    assert all(map(is_group_name, ["team-shop", "/org/team", "team:shop"]))
    assert not any(map(is_group_name, ["", "a b", "-x"]))
