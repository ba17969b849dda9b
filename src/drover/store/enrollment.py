"""Enrollment in the system of record: one-time tokens, and the bus keys hosts have shown.

A token is spent by a conditional update (unused, unexpired, for this host or any) in the same
transaction that enrolls the key, so two hosts racing with one token cannot both win. A host
has at most one enrolled key: enrolling another revokes the one before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import enrollment_tokens, host_keys


class KeyState(StrEnum):
    PENDING = "pending"
    ENROLLED = "enrolled"
    REJECTED = "rejected"
    REVOKED = "revoked"


@dataclass(frozen=True)
class EnrollmentToken:
    id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    host: str | None = None
    used_at: datetime | None = None
    used_by_host: str | None = None


@dataclass(frozen=True)
class HostKey:
    public_key: str
    host: str
    state: KeyState
    requested_at: datetime
    source: str = ""
    via: str = ""
    decided_at: datetime | None = None
    decided_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class TokenRefused(Exception):
    """The token is unknown, spent, expired or for another host; says which."""


@dataclass(frozen=True)
class Enrolled:
    key: HostKey
    revoked: list[str]  # keys of the host that this enrollment replaced


class EnrollmentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_token(
        self, token: EnrollmentToken, secret_sha256: str, audit: AuditEntry
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(enrollment_tokens).values(
                    id=token.id,
                    secret_sha256=secret_sha256,
                    created_by=token.created_by,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    host=token.host,
                )
            )
            await write(conn, audit)

    async def tokens(self) -> list[EnrollmentToken]:
        query = select(enrollment_tokens).order_by(enrollment_tokens.c.created_at.desc())
        async with self._engine.connect() as conn:
            return [_token(row) for row in await conn.execute(query)]

    async def check_token(self, secret_sha256: str, host: str, now: datetime) -> str | None:
        """The host the token is for (None: any), if `host` may use it now; TokenRefused
        saying why not. Spends nothing: `enroll_with_token` does, in its transaction."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(enrollment_tokens).where(
                        enrollment_tokens.c.secret_sha256 == secret_sha256
                    )
                )
            ).first()
            if (
                row is None
                or row.used_at is not None
                or row.expires_at <= now
                or row.host not in (None, host)
            ):
                raise TokenRefused(await _why_refused(conn, secret_sha256, host, now))
        return str(row.host) if row.host is not None else None

    async def enroll_with_token(
        self, secret_sha256: str, key: HostKey, audit: AuditEntry
    ) -> Enrolled:
        """Spend the token and enroll `key` (its state set to enrolled), or TokenRefused."""
        now = key.requested_at
        async with self._engine.begin() as conn:
            spent = await conn.execute(
                update(enrollment_tokens)
                .where(
                    enrollment_tokens.c.secret_sha256 == secret_sha256,
                    enrollment_tokens.c.used_at.is_(None),
                    enrollment_tokens.c.expires_at > now,
                    enrollment_tokens.c.host.is_(None) | (enrollment_tokens.c.host == key.host),
                )
                .values(used_at=now, used_by_host=key.host)
                .returning(enrollment_tokens.c.id)
            )
            token_id = spent.scalar()
            if token_id is None:
                raise TokenRefused(await _why_refused(conn, secret_sha256, key.host, now))
            revoked = await _enroll(conn, key, via=token_id, by=f"token:{token_id}", now=now)
            await write(conn, audit)
        return Enrolled(await self._get(key.public_key), revoked)

    async def request(
        self,
        key: HostKey,
        audit: AuditEntry,
        *,
        max_pending: int,
        max_per_source: int,
        waits_since: datetime,
    ) -> HostKey:
        """Record a request to enroll `key` (pending); the key as it stands if known already.
        Requests from before `waits_since` have lapsed and go. Refuses (ValueError) a new
        request when `max_pending` wait, or `max_per_source` from the same address."""
        async with self._engine.begin() as conn:
            await _forget_lapsed(conn, waits_since)
            known = (
                await conn.execute(
                    select(host_keys).where(host_keys.c.public_key == key.public_key)
                )
            ).first()
            if known is not None:
                return _key(known)
            pending = host_keys.c.state == KeyState.PENDING.value
            waiting = (
                await conn.execute(select(func.count()).select_from(host_keys).where(pending))
            ).scalar_one()
            if waiting >= max_pending:
                raise ValueError(f"{waiting} enrollment requests are waiting already")
            from_there = (
                await conn.execute(
                    select(func.count())
                    .select_from(host_keys)
                    .where(pending, host_keys.c.source == key.source)
                )
            ).scalar_one()
            if from_there >= max_per_source:
                raise ValueError(f"{from_there} enrollment requests from {key.source} wait already")
            await conn.execute(insert(host_keys).values(**_row(key, KeyState.PENDING)))
            await write(conn, audit)
        return await self._get(key.public_key)

    async def approve(
        self,
        host: str,
        public_key: str,
        by: str,
        now: datetime,
        audit: AuditEntry,
        waits_since: datetime,
    ) -> Enrolled | None:
        """Enroll the pending `public_key` of `host`; None if no such request waits (or it
        was made before `waits_since`, and has lapsed)."""
        async with self._engine.begin() as conn:
            pending = (
                await conn.execute(
                    select(host_keys).where(
                        host_keys.c.public_key == public_key,
                        host_keys.c.host == host,
                        host_keys.c.state == KeyState.PENDING.value,
                        host_keys.c.requested_at >= waits_since,
                    )
                )
            ).first()
            if pending is None:
                return None
            revoked = await _enroll(conn, _key(pending), via="approval", by=by, now=now)
            await write(conn, audit)
        return Enrolled(await self._get(public_key), revoked)

    async def reject(
        self, host: str, public_key: str, by: str, now: datetime, audit: AuditEntry
    ) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(host_keys)
                .where(
                    host_keys.c.public_key == public_key,
                    host_keys.c.host == host,
                    host_keys.c.state == KeyState.PENDING.value,
                )
                .values(state=KeyState.REJECTED.value, decided_at=now, decided_by=by)
            )
            if not done.rowcount:
                return False
            await write(conn, audit)
        return True

    async def revoke(self, host: str, by: str, now: datetime, audit: AuditEntry) -> list[str]:
        """Revoke the host's enrolled key (and reject what it has waiting); the keys revoked."""
        async with self._engine.begin() as conn:
            revoked = await _revoke_enrolled(conn, host, by, now)
            await conn.execute(
                update(host_keys)
                .where(host_keys.c.host == host, host_keys.c.state == KeyState.PENDING.value)
                .values(state=KeyState.REJECTED.value, decided_at=now, decided_by=by)
            )
            if revoked:
                await write(conn, audit)
        return revoked

    async def get(self, public_key: str) -> HostKey | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(host_keys).where(host_keys.c.public_key == public_key))
            ).first()
        return _key(row) if row is not None else None

    async def keys(
        self,
        state: KeyState | None = None,
        host: str | None = None,
        waits_since: datetime | None = None,
    ) -> list[HostKey]:
        """Keys, newest first; with `waits_since`, without requests from before it (lapsed:
        the next request deletes them; a listing, which the GUI polls, only reads)."""
        query = select(host_keys).order_by(host_keys.c.requested_at.desc())
        if waits_since is not None:
            lapsed = (host_keys.c.state == KeyState.PENDING.value) & (
                host_keys.c.requested_at < waits_since
            )
            query = query.where(~lapsed)
        if state is not None:
            query = query.where(host_keys.c.state == state.value)
        if host is not None:
            query = query.where(host_keys.c.host == host)
        async with self._engine.connect() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def revocations(self, since: datetime, lasting: timedelta) -> dict[str, int]:
        """Every key revoked since `since`, with the time (epoch seconds) up to which JWTs
        issued for it are refused: `lasting` past its revocation, so that credentials minted in
        a race with the revocation are refused too (a revoked key never comes back)."""
        query = select(host_keys.c.public_key, host_keys.c.revoked_at).where(
            host_keys.c.state == KeyState.REVOKED.value, host_keys.c.revoked_at >= since
        )
        async with self._engine.connect() as conn:
            return {
                row.public_key: int((row.revoked_at + lasting).timestamp())
                for row in await conn.execute(query)
            }

    async def _get(self, public_key: str) -> HostKey:
        key = await self.get(public_key)
        assert key is not None
        return key


async def _forget_lapsed(conn: AsyncConnection, waits_since: datetime) -> None:
    await conn.execute(
        delete(host_keys).where(
            host_keys.c.state == KeyState.PENDING.value,
            host_keys.c.requested_at < waits_since,
        )
    )


async def _enroll(
    conn: AsyncConnection, key: HostKey, *, via: str, by: str, now: datetime
) -> list[str]:
    revoked = await _revoke_enrolled(conn, key.host, f"drover: replaced by {by}", now, keep=key)
    values = dict(state=KeyState.ENROLLED.value, via=via, decided_at=now, decided_by=by)
    known = await conn.execute(
        update(host_keys).where(host_keys.c.public_key == key.public_key).values(**values)
    )
    if not known.rowcount:
        await conn.execute(insert(host_keys).values({**_row(key, KeyState.ENROLLED), **values}))
    return revoked


async def _revoke_enrolled(
    conn: AsyncConnection, host: str, by: str, now: datetime, keep: HostKey | None = None
) -> list[str]:
    query = select(host_keys.c.public_key).where(
        host_keys.c.host == host, host_keys.c.state == KeyState.ENROLLED.value
    )
    if keep is not None:
        query = query.where(host_keys.c.public_key != keep.public_key)
    revoked = [row.public_key for row in await conn.execute(query)]
    if revoked:
        await conn.execute(
            update(host_keys)
            .where(host_keys.c.public_key.in_(revoked))
            .values(state=KeyState.REVOKED.value, revoked_at=now, revoked_by=by)
        )
    return revoked


async def _why_refused(conn: AsyncConnection, secret_sha256: str, host: str, now: datetime) -> str:
    row = (
        await conn.execute(
            select(enrollment_tokens).where(enrollment_tokens.c.secret_sha256 == secret_sha256)
        )
    ).first()
    if row is None:
        return "no such enrollment token"
    if row.used_at is not None:
        return f"this enrollment token was used already ({row.used_at:%Y-%m-%d %H:%M} UTC)"
    if row.expires_at <= now:
        return f"this enrollment token expired at {row.expires_at:%Y-%m-%d %H:%M} UTC"
    return f"this enrollment token is for host {row.host!r}, not {host!r}"


def _row(key: HostKey, state: KeyState) -> dict[str, Any]:
    return dict(
        public_key=key.public_key,
        host=key.host,
        state=state.value,
        requested_at=key.requested_at,
        source=key.source,
        via=key.via,
    )


def _key(row: Any) -> HostKey:
    return HostKey(**{**row._mapping, "state": KeyState(row.state)})


def _token(row: Any) -> EnrollmentToken:
    return EnrollmentToken(**{k: v for k, v in row._mapping.items() if k != "secret_sha256"})
