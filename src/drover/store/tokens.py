"""API tokens: long-lived credentials for scripts and the CLI, in the system of record.

Only the SHA-256 of a token's secret is kept (the secret has 256 random bits, so a fast hash
is enough; a stolen database yields no usable token). The public `id` names a token in lists
and for revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import api_tokens, users
from drover.store.users import User, user_from_row


@dataclass(frozen=True)
class ApiToken:
    id: str
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    # The user who made it for its owner; None: the owner, or out of band (database bootstrap).
    created_by: str | None = None

    @property
    def not_own(self) -> str | None:
        """Who else made this token, if someone did: then it is not its owner's alone."""
        by = self.created_by
        return by if by is not None and by != self.user else None

    def valid(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class TokenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, token: ApiToken, secret_sha256: str, audit: AuditEntry) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_tokens).values(
                    id=token.id,
                    user=token.user,
                    name=token.name,
                    secret_sha256=secret_sha256,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    created_by=token.created_by,
                )
            )
            await write(conn, audit)

    async def by_secret(self, secret_sha256: str) -> tuple[ApiToken, User] | None:
        """The token with this secret and its user, valid or not (the caller decides)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_tokens).where(api_tokens.c.secret_sha256 == secret_sha256)
                )
            ).first()
            if row is None:
                return None
            owner = (await conn.execute(select(users).where(users.c.name == row.user))).first()
        return (_token(row), user_from_row(owner)) if owner is not None else None

    async def get(self, token_id: str) -> ApiToken | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            ).first()
        return _token(row) if row is not None else None

    async def of(self, user: str | None) -> list[ApiToken]:
        """The tokens of `user`, or of everyone; revoked ones included, newest first."""
        query = select(api_tokens).order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        async with self._engine.connect() as conn:
            return [_token(row) for row in await conn.execute(query)]

    async def revoke(self, token_id: str, now: datetime, audit: AuditEntry) -> bool:
        """False if there is no such token or it was revoked already."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if not done.rowcount:
                return False
            await write(conn, audit)
        return True

    async def used(self, token_id: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
            )


def _token(row: Any) -> ApiToken:
    return ApiToken(
        id=row.id,
        user=row.user,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        created_by=row.created_by,
    )
