"""Signing in and out: password logins with their rate limit, and the sessions they open.

Every login is recorded in the database before its password is checked (so every server
process on one PostgreSQL, and every request at once, sees it) and counted against three
limits: one name from one address, one address whatever the names, and one name from anywhere
(a shorter window, and not from an address the name signed in from lately: guessing spread
over many addresses is slowed down, but cannot lock the owner out from their own). Past a
limit, the login is refused with 429 and `Retry-After` before any password is checked; that
refusal is audited too. A wrong name and a wrong password fail alike, in about the same time,
with one message.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from drover.model.access import is_user_name
from drover.ops.clock import Clock
from drover.server.auth.credentials import new_csrf_token, new_session_id, sha256
from drover.server.auth.passwords import MAX_LENGTH, Passwords
from drover.server.auth.settings import AuthSettings
from drover.server.errors import TooManyRequests, Unauthorized
from drover.store.audit import AuditEntry
from drover.store.logins import LoginLimit, LoginStore, Throttled
from drover.store.sessions import Session, SessionStore
from drover.store.users import UserStore

log = logging.getLogger(__name__)

WRONG = "wrong name or password"
INVALID_NAME = "<not a user name>"
PURGE_EVERY_S = 600


@dataclass(frozen=True)
class OpenedSession:
    """A new session: its id goes into the cookie and exists nowhere else."""

    id: str
    session: Session


class SessionKeeper:
    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        logins: LoginStore,
        passwords: Passwords,
        clock: Clock,
        settings: AuthSettings,
    ) -> None:
        self._users = users
        self.sessions = sessions
        self._logins = logins
        self._passwords = passwords
        self._clock = clock
        self._settings = settings

    async def login(self, name: str, password: str, source: str) -> OpenedSession:
        """A session for `name`; Unauthorized (401) or TooManyRequests (429) if not."""
        now = self._clock.now()
        # A name no user can have is counted and audited under one placeholder: what was
        # typed may be anything, even what a database cannot store.
        name = name if is_user_name(name) else INVALID_NAME
        # Recorded before the password is checked; an attempt cancelled midway stays pending,
        # counted like a failure until it leaves the window.
        attempt = await self._attempt(name, source, now)
        found = await self._users.password_hash(name) if name != INVALID_NAME else None
        user, stored = found if found is not None else (None, None)
        matches = await self._passwords.verify(stored, password[:MAX_LENGTH])
        if user is None or not matches or user.disabled:
            reason = (
                "no such user"
                if user is None
                else "user disabled"
                if matches
                else "no password set"
                if stored is None
                else "wrong password"
            )
            detail = {"reason": reason, "source": source}
            entry = AuditEntry(name, "auth.login_failed", name, now, detail)
            await self._logins.failed(attempt, entry)
            log.info("login of %r from %s failed: %s", name, source, reason)
            raise Unauthorized(WRONG)
        opened = await self.open(user.name, "password")
        await self._logins.succeeded(attempt, name, source)
        return opened

    async def open(self, user: str, via: str) -> OpenedSession:
        """A session for `user`, who proved who they are `via` a password or OIDC."""
        now = self._clock.now()
        session = Session(
            user=user,
            csrf_token=new_csrf_token(),
            via=via,
            created_at=now,
            expires_at=now + self._settings.session_lifetime,
            idle_expires_at=now + min(self._settings.session_idle, self._settings.session_lifetime),
        )
        session_id = new_session_id()
        entry = AuditEntry(user, "auth.login", user, now, {"via": via})
        await self.sessions.open(sha256(session_id), session, entry)
        log.info("%s signed in (%s)", user, via)
        return OpenedSession(session_id, session)

    async def logout(self, user: str, session_sha256: str) -> None:
        entry = AuditEntry(user, "auth.logout", user, self._clock.now())
        await self.sessions.close(session_sha256, entry)
        log.info("%s signed out", user)

    async def purge_ended(self) -> None:
        """Forever: delete sessions that have ended, so the table holds only live ones."""
        while True:
            purged = await self.sessions.purge(self._clock.now())
            if purged:
                log.info("%d ended sessions purged", purged)
            await asyncio.sleep(PURGE_EVERY_S)

    async def _attempt(self, name: str, source: str, now: datetime) -> int:
        """The id of this login attempt, recorded as pending; TooManyRequests (429) past a
        limit, before any password is checked."""
        settings = self._settings
        limits = [
            LoginLimit(
                f"for {name!r} from {source}",
                {"name": name, "source": source},
                settings.login_failures_per_name,
                settings.login_window,
            ),
            LoginLimit(
                f"from {source}",
                {"source": source},
                settings.login_failures_per_source,
                settings.login_window,
            ),
        ]
        # Failures from elsewhere must not lock the owner out from where they sign in.
        if not await self._logins.known_pair(name, source):
            limits.append(
                LoginLimit(
                    f"for {name!r}",
                    {"name": name},
                    settings.login_failures_per_name_anywhere,
                    settings.login_name_window,
                )
            )
        longest = max(settings.login_window, settings.login_name_window)
        found = await self._logins.attempt(
            name, source, now, limits, now - longest, now - settings.login_known_for
        )
        if not isinstance(found, Throttled):
            return found
        limit = found.limit
        retry_after = max(1, math.ceil((found.free_at - now).total_seconds()))
        detail = {"failures": found.attempts, "limit": limit.attempts, "which": limit.which}
        await self._logins.record(AuditEntry(name, "auth.login_throttled", name, now, detail))
        log.warning("login %s throttled: %d failures", limit.which, found.attempts)
        raise TooManyRequests(
            f"too many failed logins {limit.which}; try again in {retry_after} s", retry_after
        )
