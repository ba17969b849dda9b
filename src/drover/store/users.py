"""Users: who may sign in, their direct grants and groups, in the system of record.

A user is `local` (made by an admin or at bootstrap; may have a password) or `oidc` (made on
the first sign-in through the identity provider; its groups are those the provider last
named). Every change is written with its audit entry in one transaction; removing a user ends
its tokens and sessions in that same transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.model.access import Grant, UserSource
from drover.store.audit import AuditEntry, write
from drover.store.tables import api_tokens, sessions, users


@dataclass(frozen=True)
class User:
    name: str
    source: UserSource
    grants: tuple[Grant, ...]
    groups: tuple[str, ...]  # sorted
    created_at: datetime
    disabled_at: datetime | None = None
    has_password: bool = False
    # Who last set the password, when someone else than the user did: the password is not
    # the user's alone until they set one themself. None: their own, or set out of band.
    password_set_by: str | None = None
    password_set_at: datetime | None = None
    oidc_issuer: str | None = None  # OIDC users: the (iss, sub) bound at the first sign-in
    oidc_subject: str | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def password_not_own(self) -> str | None:
        """Who else set the password, if someone did."""
        by = self.password_set_by
        return by if by is not None and by != self.name else None


@dataclass(frozen=True)
class UserChange:
    """What to change; None leaves a field as it is. `password_hash=""` removes the password."""

    grants: tuple[Grant, ...] | None = None
    groups: tuple[str, ...] | None = None
    password_hash: str | None = None
    password_set_by: str | None = None  # with password_hash: who set it (None: out of band)
    password_set_at: datetime | None = None
    disabled_at: datetime | None = None
    enable: bool = False  # clears disabled_at


class UserStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def _change(self, audit: AuditEntry) -> AsyncIterator[AsyncConnection]:
        """A transaction that records `audit` along with whatever the caller changes in it."""
        async with self._engine.begin() as conn:
            await write(conn, audit)
            yield conn

    async def add(self, user: User, password_hash: str | None, audit: AuditEntry) -> bool:
        """False if a user of that name exists already."""
        try:
            async with self._change(audit) as conn:
                await conn.execute(
                    insert(users).values(
                        name=user.name,
                        password_hash=password_hash,
                        source=user.source.value,
                        grants=[g.to_json() for g in user.grants],
                        groups=sorted(user.groups),
                        created_at=user.created_at,
                        disabled_at=user.disabled_at,
                        password_set_by=user.password_set_by,
                        password_set_at=user.password_set_at,
                        oidc_issuer=user.oidc_issuer,
                        oidc_subject=user.oidc_subject,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def get(self, name: str) -> User | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        return _user(row) if row is not None else None

    async def by_oidc_identity(self, issuer: str, subject: str) -> User | None:
        """The user bound to this provider's subject, if any."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(users).where(
                        users.c.oidc_issuer == issuer, users.c.oidc_subject == subject
                    )
                )
            ).first()
        return _user(row) if row is not None else None

    async def password_hash(self, name: str) -> tuple[User, str | None] | None:
        """The user and its password hash, for signing in; None if there is no such user."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        return (_user(row), row.password_hash) if row is not None else None

    async def all(self) -> list[User]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(users).order_by(users.c.name))
            return [_user(row) for row in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def change(self, name: str, change: UserChange, audit: AuditEntry) -> User | None:
        """The user as changed; None (and nothing recorded) if there is no such user."""
        values: dict[str, Any] = {}
        if change.grants is not None:
            values["grants"] = [g.to_json() for g in change.grants]
        if change.groups is not None:
            values["groups"] = sorted(change.groups)
        if change.password_hash is not None:
            values["password_hash"] = change.password_hash or None
            values["password_set_by"] = change.password_set_by if change.password_hash else None
            values["password_set_at"] = change.password_set_at if change.password_hash else None
        if change.disabled_at is not None:
            values["disabled_at"] = change.disabled_at
        if change.enable:
            values["disabled_at"] = None
        async with self._engine.begin() as conn:
            if values:
                done = await conn.execute(update(users).where(users.c.name == name).values(values))
                if not done.rowcount:
                    return None
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
            if row is None:
                return None
            if change.disabled_at is not None or change.password_hash is not None:
                # Disabled, or a new password: whoever is signed in signs in again.
                await conn.execute(delete(sessions).where(sessions.c.user == name))
            await write(conn, audit)
            return _user(row)

    async def bind_oidc(self, name: str, issuer: str, subject: str, audit: AuditEntry) -> bool:
        """Bind an OIDC user with no identity yet (made before identities were kept) to the
        provider's (iss, sub); False if it is bound already, gone, or (iss, sub) is another's."""
        try:
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(users)
                    .where(users.c.name == name, users.c.oidc_subject.is_(None))
                    .values(oidc_issuer=issuer, oidc_subject=subject)
                )
                if not done.rowcount:
                    return False
                await write(conn, audit)
        except IntegrityError:
            return False
        return True

    async def remove(self, name: str, audit: AuditEntry) -> bool:
        """Remove the user with its tokens and sessions; False if there is none."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(api_tokens).where(api_tokens.c.user == name))
            await conn.execute(delete(sessions).where(sessions.c.user == name))
            done = await conn.execute(delete(users).where(users.c.name == name))
            if not done.rowcount:
                return False
            await write(conn, audit)
        return True


def _user(row: Any) -> User:
    return User(
        name=row.name,
        source=UserSource(row.source),
        grants=tuple(Grant.from_json(g) for g in row.grants),
        groups=tuple(row.groups),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        has_password=row.password_hash is not None,
        password_set_by=row.password_set_by,
        password_set_at=row.password_set_at,
        oidc_issuer=row.oidc_issuer,
        oidc_subject=row.oidc_subject,
    )


def user_from_row(row: Any) -> User:
    """A user from a row that has the users table's columns (joins in tokens.py, sessions.py)."""
    return _user(row)


def sorted_groups(groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(groups)))
