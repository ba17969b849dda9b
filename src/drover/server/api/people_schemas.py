"""Request and response bodies of signing in, users and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from drover.config.globs import glob_problem
from drover.model.access import GROUP_NAME_PATTERN, USER_NAME_PATTERN, Grant, Role
from drover.server.api.schemas import Body
from drover.server.auth.accounts import MAX_TOKEN_DAYS


def _glob(value: str) -> str:
    if problem := glob_problem(value):
        raise ValueError(problem)
    return value


def _storable(value: str) -> str:
    """Text every database keeps as given: UTF-8 without NUL (PostgreSQL refuses both)."""
    try:
        value.encode()
    except UnicodeEncodeError as err:
        raise ValueError("must be valid Unicode text") from err
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


UserName = Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
Text = Annotated[str, AfterValidator(_storable)]
GroupName = Annotated[str, StringConstraints(pattern=GROUP_NAME_PATTERN)]
NameGlob = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_glob)]


class GrantIO(Body):
    """A role within a scope: the applications and environments whose names match these globs."""

    role: Role
    applications: list[NameGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[NameGlob] = Field(default_factory=lambda: ["*"], min_length=1)

    def grant(self) -> Grant:
        return Grant(self.role, tuple(self.applications), tuple(self.environments))

    @classmethod
    def of(cls, grant: Grant) -> GrantIO:
        return cls(
            role=grant.role,
            applications=list(grant.applications),
            environments=list(grant.environments),
        )


class LoginIn(Body):
    name: Text = Field(min_length=1, max_length=200)
    password: Text = Field(min_length=1, max_length=1024)


class LoginOut(Body):
    name: str
    csrf_token: str = Field(
        description="send it as X-CSRF-Token with every request that changes something"
    )
    expires_at: datetime = Field(description="the session ends then however active it is")


class WhoamiOut(Body):
    name: str
    groups: list[str]
    grants: list[GrantIO] = Field(description="direct grants and those of the groups")
    via: str = Field(description="how the caller signed in: token, password, oidc")


class UserIn(Body):
    name: UserName
    grants: list[GrantIO] = Field(default_factory=list)
    groups: list[GroupName] = Field(default_factory=list)
    password: Text | None = Field(
        default=None, max_length=1024, description="none: signs in with tokens only"
    )


class UserChangeIn(Body):
    """What to change; fields left out stay as they are."""

    grants: list[GrantIO] | None = None
    groups: list[GroupName] | None = None
    password: Text | None = Field(default=None, max_length=1024)
    disabled: bool | None = Field(default=None, description="a disabled user cannot sign in")


class UserOut(Body):
    name: str
    source: str = Field(description="local (made in drover) or oidc (first signed in via OIDC)")
    grants: list[GrantIO]
    groups: list[str]
    has_password: bool
    password_set_by: str | None = Field(
        default=None,
        description="who last set the password, if not the user (null: the user, or set up "
        "out of band); until the user sets their own, their approvals do not count",
    )
    password_set_at: datetime | None = None
    created_at: datetime
    disabled_at: datetime | None


class TokenIn(Body):
    name: Text = Field(default="cli", min_length=1, max_length=200)
    expires_in_days: int = Field(default=90, ge=1, le=MAX_TOKEN_DAYS)
    user: UserName | None = Field(default=None, description="another user's: admins only")


class TokenOut(Body):
    id: str
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str | None = Field(
        default=None, description="who made it for its user (null: the user, or out of band)"
    )


class TokenCreatedOut(TokenOut):
    secret: str = Field(description="shown this once; drover keeps only its hash")
