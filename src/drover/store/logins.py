"""Failed logins and OIDC logins under way: what signing in needs to remember in between.

Both live in the database, not in a process, so several server processes on one PostgreSQL
share one rate limit and a login may start on one process and finish on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import login_failures, oidc_requests


@dataclass(frozen=True)
class RecentFailures:
    """The times of failed logins since some moment, oldest first."""

    of_name: list[datetime]
    from_source: list[datetime]


@dataclass(frozen=True)
class OidcRequest:
    nonce: str
    code_verifier: str
    created_at: datetime
    expires_at: datetime


class LoginStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def failures(self, name: str, source: str, since: datetime) -> RecentFailures:
        recent = select(login_failures.c.at).where(login_failures.c.at > since)
        async with self._engine.connect() as conn:
            of_name = await conn.execute(
                recent.where(login_failures.c.name == name).order_by(login_failures.c.at)
            )
            from_source = await conn.execute(
                recent.where(login_failures.c.source == source).order_by(login_failures.c.at)
            )
            return RecentFailures(list(of_name.scalars()), list(from_source.scalars()))

    async def failed(
        self, name: str, source: str, at: datetime, forget_before: datetime, audit: AuditEntry
    ) -> None:
        """Record a failed login; failures older than `forget_before` no longer count."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(login_failures).where(login_failures.c.at < forget_before))
            await conn.execute(insert(login_failures).values(at=at, name=name, source=source))
            await write(conn, audit)

    async def record(self, audit: AuditEntry) -> None:
        """An entry of its own: a login refused before any password was checked."""
        async with self._engine.begin() as conn:
            await write(conn, audit)

    async def begin_oidc(self, state_sha256: str, request: OidcRequest) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(oidc_requests).where(oidc_requests.c.expires_at < request.created_at)
            )
            await conn.execute(
                insert(oidc_requests).values(
                    state_sha256=state_sha256,
                    nonce=request.nonce,
                    code_verifier=request.code_verifier,
                    created_at=request.created_at,
                    expires_at=request.expires_at,
                )
            )

    async def take_oidc(self, state_sha256: str) -> OidcRequest | None:
        """The login under way with this state, once: a second callback finds nothing."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(oidc_requests).where(oidc_requests.c.state_sha256 == state_sha256)
                )
            ).first()
            if row is None:
                return None
            done = await conn.execute(
                delete(oidc_requests).where(oidc_requests.c.state_sha256 == state_sha256)
            )
            if not done.rowcount:  # another process took it in the meantime
                return None
        return OidcRequest(row.nonce, row.code_verifier, row.created_at, row.expires_at)
