"""Browser sessions: signed in by password or through OIDC, in the system of record.

Only the SHA-256 of a session id is kept. A session ends at its absolute expiry however busy
it is, and earlier when idle longer than the idle timeout (each use moves `idle_expires_at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import sessions, users
from drover.store.users import User, user_from_row


@dataclass(frozen=True)
class Session:
    user: str
    csrf_token: str
    via: str  # password or oidc
    created_at: datetime
    expires_at: datetime
    idle_expires_at: datetime

    def valid(self, now: datetime) -> bool:
        return now < self.expires_at and now < self.idle_expires_at


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def open(self, id_sha256: str, session: Session, audit: AuditEntry) -> None:
        """Start a session (a password login's failures are forgiven by the LoginStore)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(sessions).values(
                    id_sha256=id_sha256,
                    user=session.user,
                    csrf_token=session.csrf_token,
                    via=session.via,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    idle_expires_at=session.idle_expires_at,
                )
            )
            await write(conn, audit)

    async def find(self, id_sha256: str) -> tuple[Session, User] | None:
        """The session and its user, valid or not (the caller decides)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(sessions).where(sessions.c.id_sha256 == id_sha256))
            ).first()
            if row is None:
                return None
            owner = (await conn.execute(select(users).where(users.c.name == row.user))).first()
        return (_session(row), user_from_row(owner)) if owner is not None else None

    async def used(self, id_sha256: str, idle_expires_at: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.id_sha256 == id_sha256)
                .values(idle_expires_at=idle_expires_at)
            )

    async def close(self, id_sha256: str, audit: AuditEntry) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(delete(sessions).where(sessions.c.id_sha256 == id_sha256))
            if not done.rowcount:
                return False
            await write(conn, audit)
        return True

    async def purge(self, now: datetime) -> int:
        """Delete the sessions that have ended; how many."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                delete(sessions).where(
                    or_(sessions.c.expires_at <= now, sessions.c.idle_expires_at <= now)
                )
            )
        return int(done.rowcount or 0)


def _session(row: Any) -> Session:
    return Session(
        user=row.user,
        csrf_token=row.csrf_token,
        via=row.via,
        created_at=row.created_at,
        expires_at=row.expires_at,
        idle_expires_at=row.idle_expires_at,
    )
