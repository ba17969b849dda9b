"""Who may do what: roles, the permissions they carry, and grants scoped to applications.

A principal (a person, or a script with a token) holds grants. A grant is a role within a
scope: the applications and environments it covers, as globs (`shop-*`, `staging`). The
principal may do something when one of its grants has a role with that permission and covers
the object it is about.

Scope semantics, precisely:

- About an application (`application` given): a grant covers it when the application's name
  matches one of its application globs and the application's environment matches one of its
  environment globs (case-sensitive `fnmatchcase`).
- About nothing in particular (`application` is None: the user list, someone else's tokens,
  decommissioning a host, the audit trail): only an *unscoped* grant covers it, one whose
  applications and environments are both exactly `("*",)`. A grant for `shop` in `staging`
  does not let its holder read the audit of the whole fleet.
- Lists (hosts, applications, actions) are not one object: they are filtered to what the
  caller may read, see `may_somewhere` for the question "may this principal read anything".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

ANY = "*"
EVERYWHERE: tuple[str, ...] = (ANY,)

# User names: what people and identity providers use (`alice`, `alice@example.com`, `ci-bot`).
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$"
# Group names: also those of identity providers (`team-shop`, `/org/team`, `team:shop`).
GROUP_NAME_PATTERN = r"^[A-Za-z0-9/][A-Za-z0-9._@:/+-]{0,199}$"
_USER_NAME = re.compile(USER_NAME_PATTERN)
_GROUP_NAME = re.compile(GROUP_NAME_PATTERN)


def is_user_name(value: str) -> bool:
    return _USER_NAME.match(value) is not None


def is_group_name(value: str) -> bool:
    return _GROUP_NAME.match(value) is not None


class UserSource(StrEnum):
    LOCAL = "local"  # made by an admin (API, CLI) or by bootstrap
    OIDC = "oidc"  # made on the first sign-in through the identity provider


class Permission(StrEnum):
    READ = "read"  # see hosts, applications, actions, overrides, config status
    ACT = "act"  # actions (incl. commands), cancel, overrides
    APPROVE = "approve"  # approve or reject what needs four eyes
    AUDIT = "audit"  # read the audit trail
    ADMIN = "admin"  # users, other people's tokens, decommissioning hosts


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self]


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.ACT}),
    Role.APPROVER: frozenset({Permission.READ, Permission.APPROVE, Permission.AUDIT}),
    Role.ADMIN: frozenset(Permission),
}


def least_role(permission: Permission) -> Role:
    """The smallest role that carries `permission`, to tell a denied caller what is missing."""
    return next(role for role in Role if permission in role.permissions)


@dataclass(frozen=True)
class Grant:
    role: Role
    applications: tuple[str, ...] = EVERYWHERE
    environments: tuple[str, ...] = EVERYWHERE

    @property
    def unscoped(self) -> bool:
        return self.applications == EVERYWHERE and self.environments == EVERYWHERE

    def covers(self, application: str | None, environment: str | None = None) -> bool:
        """Whether this grant's scope includes `application` in `environment`; with no
        application (something about the whole fleet), only an unscoped grant does.
        An application whose environment is unknown (None) is covered only by a grant for
        every environment."""
        if application is None:
            return self.unscoped
        if not any(fnmatchcase(application, glob) for glob in self.applications):
            return False
        if environment is None:
            return ANY in self.environments
        return any(fnmatchcase(environment, glob) for glob in self.environments)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": str(self.role),
            "applications": list(self.applications),
            "environments": list(self.environments),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        return cls(
            Role(data["role"]),
            tuple(data.get("applications", EVERYWHERE)),
            tuple(data.get("environments", EVERYWHERE)),
        )

    def describe(self) -> str:
        """`operator on shop,shop-* in staging`, `admin` when unscoped."""
        text = str(self.role)
        if self.applications != EVERYWHERE:
            text += " on " + ",".join(self.applications)
        if self.environments != EVERYWHERE:
            text += " in " + ",".join(self.environments)
        return text


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and everything it may do, resolved once per request."""

    name: str
    groups: frozenset[str]
    grants: tuple[Grant, ...]
    via: str  # how it proved who it is: "token", "session", "oidc", "bootstrap"
    # Set when the credential is not the principal's alone: someone else set its password or
    # made its token ("your password was set by rita"). Such a caller may do what its grants
    # allow, but its vote on an approval does not count: that would be four eyes of one.
    not_own_credential: str | None = None
    credential_by: str | None = None  # who else holds it, then

    @property
    def own_credential(self) -> bool:
        return self.not_own_credential is None

    def may(
        self, permission: Permission, application: str | None = None, environment: str | None = None
    ) -> bool:
        return any(
            permission in grant.role.permissions and grant.covers(application, environment)
            for grant in self.grants
        )

    def may_somewhere(self, permission: Permission) -> bool:
        """Whether any grant carries `permission`, whatever its scope: the entry ticket for a
        list that is then filtered object by object."""
        return any(permission in grant.role.permissions for grant in self.grants)
