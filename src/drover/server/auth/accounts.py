"""Users and their API tokens: adding, changing, removing, each on the audit trail.

The one place that turns a request about people into store changes with audit entries. The
API and the CLI's bootstrap (`drover user add --database …`) both go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from drover.model.access import Grant, UserSource, is_group_name, is_user_name
from drover.ops.clock import Clock
from drover.server.auth.credentials import is_token_id, new_token_id, new_token_secret, sha256
from drover.server.auth.passwords import Passwords, password_problem
from drover.server.errors import Conflict, NotFound, Unprocessable
from drover.store.audit import AuditEntry
from drover.store.tokens import ApiToken, TokenStore
from drover.store.users import User, UserChange, UserStore, sorted_groups

log = logging.getLogger(__name__)

MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True)
class IssuedToken:
    """A new token with its secret: the only time the secret exists outside the caller."""

    token: ApiToken
    secret: str


class Accounts:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        passwords: Passwords,
        oidc_token_lifetime: timedelta | None = None,
    ) -> None:
        self.users = UserStore(engine)
        self.tokens = TokenStore(engine)
        self._clock = clock
        self._passwords = passwords
        # With OIDC: tokens of OIDC users end within this (the provider decides who they are).
        self.oidc_token_lifetime = oidc_token_lifetime

    # `as_user` below: the drover user who does this through the API (whoever holds the
    # caller's credential), recorded as who set a password or made a token, so that a
    # credential someone else set is known as such (no four eyes of one). None: out of band
    # (the database bootstrap, drover dev), by whoever holds the database anyway.

    async def add_user(
        self,
        name: str,
        *,
        by: str,
        grants: Iterable[Grant] = (),
        groups: Iterable[str] = (),
        password: str | None = None,
        source: UserSource = UserSource.LOCAL,
        as_user: str | None = None,
        oidc_identity: tuple[str, str] | None = None,
    ) -> User:
        _check_name(name)
        group_list = _checked_groups(groups)
        password_hash = await self._hash(password) if password is not None else None
        now = self._clock.now()
        user = User(
            name=name,
            source=source,
            grants=tuple(grants),
            groups=group_list,
            created_at=now,
            has_password=password_hash is not None,
            password_set_by=as_user if password_hash is not None else None,
            password_set_at=now if password_hash is not None else None,
            oidc_issuer=oidc_identity[0] if oidc_identity else None,
            oidc_subject=oidc_identity[1] if oidc_identity else None,
        )
        detail: dict[str, object] = {
            "grants": [g.describe() for g in user.grants],
            "groups": list(group_list),
            "source": source.value,
            "password": password_hash is not None,
        }
        entry = AuditEntry(by, "user.added", name, user.created_at, detail)
        if not await self.users.add(user, password_hash, entry):
            raise Conflict(f"user {name!r} exists already")
        log.info("user %s added by %s", name, by)
        return user

    async def change_user(
        self,
        name: str,
        *,
        by: str,
        grants: Iterable[Grant] | None = None,
        groups: Iterable[str] | None = None,
        password: str | None = None,
        disabled: bool | None = None,
        as_user: str | None = None,
    ) -> User:
        if not is_user_name(name):
            raise NotFound(f"no user {name!r}")
        now = self._clock.now()
        change = UserChange(
            grants=tuple(grants) if grants is not None else None,
            groups=_checked_groups(groups) if groups is not None else None,
            password_hash=await self._hash(password) if password is not None else None,
            password_set_by=as_user,
            password_set_at=now,
            disabled_at=now if disabled else None,
            enable=disabled is False,
        )
        detail: dict[str, object] = {}
        if change.grants is not None:
            detail["grants"] = [g.describe() for g in change.grants]
        if change.groups is not None:
            detail["groups"] = list(change.groups)
        if password is not None:
            detail["password"] = "changed"  # noqa: S105 (that it changed; never what to)
        if disabled is not None:
            detail["disabled"] = disabled
        changed = await self.users.change(
            name, change, AuditEntry(by, "user.changed", name, now, detail)
        )
        if changed is None:
            raise NotFound(f"no user {name!r}")
        log.info("user %s changed by %s: %s", name, by, ", ".join(detail) or "nothing")
        return changed

    async def remove_user(self, name: str, *, by: str) -> User | None:
        """Remove a user; an OIDC user is disabled instead (returned as such): removed, its
        next sign-in at the provider would make it anew."""
        found = await self.user(name)
        if found.source is UserSource.OIDC:
            return await self.change_user(name, by=by, disabled=True)
        entry = AuditEntry(by, "user.removed", name, self._clock.now())
        if not await self.users.remove(name, entry):
            raise NotFound(f"no user {name!r}")
        log.info("user %s removed by %s", name, by)
        return None

    async def user(self, name: str) -> User:
        found = await self.users.get(name) if is_user_name(name) else None
        if found is None:
            raise NotFound(f"no user {name!r}")
        return found

    async def create_token(
        self, user: str, *, name: str, expires_in: timedelta, by: str, as_user: str | None = None
    ) -> IssuedToken:
        if not timedelta(0) < expires_in <= timedelta(days=MAX_TOKEN_DAYS):
            raise Unprocessable(f"a token expires within 1 to {MAX_TOKEN_DAYS} days")
        owner = await self.user(user)
        if owner.disabled:
            raise Conflict(f"user {user!r} is disabled")
        capped = (
            owner.source is UserSource.OIDC
            and self.oidc_token_lifetime is not None
            and expires_in > self.oidc_token_lifetime
        )
        if capped and self.oidc_token_lifetime is not None:
            # The provider, not drover, says whether an OIDC user may still sign in: a token
            # must not outlive that by months.
            expires_in = self.oidc_token_lifetime
        now = self._clock.now()
        expires_at = now + expires_in
        token = ApiToken(
            id=new_token_id(),
            user=user,
            name=name,
            created_at=now,
            expires_at=expires_at,
            created_by=as_user,
        )
        secret = new_token_secret()
        detail: dict[str, object] = {
            "user": user,
            "name": name,
            "expires_at": expires_at.isoformat(),
        }
        if capped:
            detail["capped"] = "an OIDC user's token"
        if as_user is not None and as_user != user:
            detail["made_by"] = as_user
        entry = AuditEntry(by, "token.created", token.id, now, detail)
        await self.tokens.create(token, sha256(secret), entry)
        log.info("token %s (%s) for %s created by %s", token.id, name, user, by)
        return IssuedToken(token, secret)

    async def token(self, token_id: str) -> ApiToken | None:
        return await self.tokens.get(token_id) if is_token_id(token_id) else None

    async def revoke_token(self, token_id: str, *, by: str) -> None:
        now = self._clock.now()
        token = await self.token(token_id)
        if token is None:
            raise NotFound(f"no token {token_id!r}")
        detail = {"user": token.user, "name": token.name}
        if not await self.tokens.revoke(
            token_id, now, AuditEntry(by, "token.revoked", token_id, now, detail)
        ):
            raise NotFound(f"no token {token_id!r} that is not revoked already")
        log.info("token %s revoked by %s", token_id, by)

    async def _hash(self, password: str) -> str:
        if problem := password_problem(password):
            raise Unprocessable(problem)
        return await self._passwords.hash(password)


def _check_name(name: str) -> None:
    if not is_user_name(name):
        raise Unprocessable(
            f"invalid user name {name!r}: letters, digits and . _ @ + - (at most 200), "
            "starting with a letter or digit"
        )


def _checked_groups(groups: Iterable[str]) -> tuple[str, ...]:
    found = sorted_groups(groups)
    if bad := [g for g in found if not is_group_name(g)]:
        raise Unprocessable(f"invalid group name {bad[0]!r}")
    return found
