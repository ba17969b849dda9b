"""Failed logins and OIDC logins under way: what signing in needs to remember in between.

Both live in the database, not in a process, so several server processes on one PostgreSQL
share one rate limit and a login may start on one process and finish on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from drover.store.audit import AuditEntry, write
from drover.store.tables import login_failures, oidc_requests


@dataclass(frozen=True)
class LoginLimit:
    """At most `attempts` failed or pending logins within `window` of those `key` selects."""

    which: str  # for messages and the audit: "for 'alice' from 10.0.0.1"
    key: dict[str, str]  # column → value: {"name": …, "source": …}
    attempts: int
    window: timedelta


@dataclass(frozen=True)
class Throttled:
    limit: LoginLimit
    attempts: int  # failed or pending within the window, this one not included
    free_at: datetime  # when enough of them have left the window


PENDING, FAILED, OK = "pending", "failed", "ok"
_COUNTED = (PENDING, FAILED)


@dataclass(frozen=True)
class OidcRequest:
    nonce: str
    code_verifier: str
    created_at: datetime
    expires_at: datetime


class LoginStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def attempt(
        self,
        name: str,
        source: str,
        at: datetime,
        limits: list[LoginLimit],
        forget_before: datetime,
        known_since: datetime,
    ) -> int | Throttled:
        """Record a login attempt as pending, then count it against `limits`: its id, or the
        first limit it exceeds (and then it is not recorded).

        Recorded first and counted after, in two transactions: every attempt counts all those
        committed before its own, so of many at once at most a limit's worth see themselves
        within it, whichever process they reach (a count first and a record after the password
        check let all of them through). Sign-ins older than `known_since` are forgotten.
        """
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.at < forget_before, login_failures.c.outcome != OK
                )
            )
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.at < known_since, login_failures.c.outcome == OK
                )
            )
            done = await conn.execute(
                insert(login_failures).values(at=at, name=name, source=source, outcome=PENDING)
            )
            attempt_id = int(done.inserted_primary_key[0])  # type: ignore[index]
        async with self._engine.connect() as conn:
            for limit in limits:
                query = select(login_failures.c.id, login_failures.c.at).where(
                    login_failures.c.at > at - limit.window,
                    login_failures.c.outcome.in_(_COUNTED),
                    *(login_failures.c[column] == value for column, value in limit.key.items()),
                )
                rows = (await conn.execute(query.order_by(login_failures.c.at))).all()
                others = [row.at for row in rows if row.id != attempt_id]
                if len(others) >= limit.attempts:
                    throttled = Throttled(
                        limit, len(others), others[len(others) - limit.attempts] + limit.window
                    )
                    break
            else:
                return attempt_id
        async with self._engine.begin() as conn:
            await conn.execute(delete(login_failures).where(login_failures.c.id == attempt_id))
        return throttled

    async def known_pair(self, name: str, source: str) -> bool:
        """Whether `name` signed in from `source` (recently: older ones are forgotten)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(login_failures.c.id).where(
                        login_failures.c.name == name,
                        login_failures.c.source == source,
                        login_failures.c.outcome == OK,
                    )
                )
            ).first()
        return row is not None

    async def failed(self, attempt_id: int, audit: AuditEntry) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(login_failures)
                .where(login_failures.c.id == attempt_id)
                .values(outcome=FAILED)
            )
            await write(conn, audit)

    async def succeeded(self, attempt_id: int, name: str, source: str) -> None:
        """The attempt signed in: it is remembered as a known (name, source) pair, and the
        pair's failures are forgiven (not those of the name from elsewhere)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.name == name,
                    login_failures.c.source == source,
                    login_failures.c.id != attempt_id,
                )
            )
            await conn.execute(
                update(login_failures).where(login_failures.c.id == attempt_id).values(outcome=OK)
            )

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
