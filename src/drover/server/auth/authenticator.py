"""From a request's credentials to a principal, or a clear refusal.

Two kinds of credentials, tried in this order:

- `Authorization: Bearer <token>`: an API token (scripts, the CLI). Browsers never send it on
  their own, so it needs no CSRF protection.
- the session cookie (the GUI, after a password or OIDC login). Browsers send cookies on their
  own, so a request that changes anything must also carry the session's CSRF token in
  `X-CSRF-Token`, equal to the `drover_csrf` cookie (double submit) and to the token stored with
  the session. SameSite=Strict already keeps other sites' requests from carrying the cookie;
  the CSRF token is the second lock for browsers or setups where that does not hold.

Every refusal is on the audit trail as `access.denied`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from drover.config.schema import FleetConfig
from drover.model.access import Principal
from drover.ops.clock import Clock
from drover.server.auth.credentials import same, sha256
from drover.server.auth.grants import effective_grants
from drover.server.auth.settings import AuthSettings
from drover.server.errors import Forbidden, Unauthorized
from drover.store.audit import AuditEntry, AuditLog
from drover.store.sessions import SessionStore
from drover.store.tokens import TokenStore
from drover.store.users import User

SESSION_COOKIE = "drover_session"
CSRF_COOKIE = "drover_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Recording each use would write on every request; to the minute is enough to tell a token in
# use from a forgotten one, and to keep a session from idling out.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Presented:
    """The credentials a request carries, as read from its headers and cookies."""

    method: str
    path: str
    bearer: str | None = None
    session: str | None = None
    csrf_header: str | None = None
    csrf_cookie: str | None = None


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    session_sha256: str | None = None  # set when it came by session cookie: logout ends it


class Authenticator:
    def __init__(
        self,
        tokens: TokenStore,
        sessions: SessionStore,
        audit: AuditLog,
        clock: Clock,
        settings: AuthSettings,
        config: Callable[[], FleetConfig | None],
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._settings = settings
        self._config = config

    def principal(
        self, user: User, via: str, not_own: str | None = None, by: str | None = None
    ) -> Principal:
        """What `user` may do now: its grants and its groups' bindings in the active config.
        `not_own`: why the credential is not the user's alone (`by` set or made it)."""
        grants = effective_grants(user.grants, user.groups, self._config())
        return Principal(user.name, frozenset(user.groups), grants, via, not_own, by)

    async def authenticate(self, presented: Presented, *, touch: bool = True) -> Authenticated:
        """Raises Unauthorized (401) without valid credentials, Forbidden (403) for a cookie
        request that changes something without the right CSRF token. `touch=False`: a check
        that is no use of the session (a live stream's), which must not keep it from idling
        out."""
        if presented.bearer is not None:
            return await self._by_token(presented, presented.bearer)
        if presented.session is not None:
            return await self._by_session(presented, presented.session, touch)
        await self._deny(presented, "anonymous", "no credentials")
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' "
            "(drover token create) or sign in (POST /api/v1/login)"
        )

    async def _by_token(self, presented: Presented, secret: str) -> Authenticated:
        now = self._clock.now()
        found = await self._tokens.by_secret(sha256(secret))
        if found is None:
            await self._deny(presented, "unknown", "unknown token")
            raise Unauthorized("unknown API token")
        token, user = found
        if token.revoked_at is not None:
            await self._deny(presented, user.name, f"token {token.id} revoked")
            raise Unauthorized(f"API token {token.id} was revoked")
        if token.expires_at is not None and now >= token.expires_at:
            await self._deny(presented, user.name, f"token {token.id} expired")
            raise Unauthorized(
                f"API token {token.id} expired at {token.expires_at:%Y-%m-%d %H:%M}Z"
            )
        if user.disabled:
            await self._deny(presented, user.name, "user disabled")
            raise Unauthorized(f"user {user.name!r} is disabled")
        if token.last_used_at is None or now - token.last_used_at >= _TOUCH_EVERY:
            await self._tokens.used(token.id, now)
        if (maker := token.not_own) is not None:
            return Authenticated(
                self.principal(
                    user,
                    "token",
                    f"this API token was made by {maker}; make your own (drover login, "
                    "with a password you set yourself)",
                    maker,
                )
            )
        return Authenticated(self.principal(user, "token"))

    async def _by_session(
        self, presented: Presented, session_id: str, touch: bool = True
    ) -> Authenticated:
        now = self._clock.now()
        key = sha256(session_id)
        found = await self._sessions.find(key)
        if found is None or not found[0].valid(now):
            who = found[1].name if found else "unknown"
            await self._deny(presented, who, "no such session, or it ended")
            raise Unauthorized("session ended or unknown: sign in again")
        session, user = found
        if user.disabled:
            await self._deny(presented, user.name, "user disabled")
            raise Unauthorized(f"user {user.name!r} is disabled")
        if presented.method not in SAFE_METHODS and not _csrf_ok(presented, session.csrf_token):
            await self._deny(presented, user.name, "missing or wrong CSRF token")
            raise Forbidden(
                f"a signed-in request that changes something needs the {CSRF_HEADER} header, "
                f"equal to the {CSRF_COOKIE} cookie"
            )
        idle_until = now + self._settings.session_idle
        if touch and idle_until - session.idle_expires_at >= _TOUCH_EVERY:
            await self._sessions.used(key, min(idle_until, session.expires_at))
        # OIDC: the provider vouched for the user, no one here set that credential.
        setter = user.password_not_own if session.via == "password" else None
        not_own = (
            f"your password was set by {setter}; set your own (drover user passwd, or "
            f"PATCH /api/v1/users/{user.name} with a new password) and sign in again"
            if setter is not None
            else None
        )
        principal = self.principal(user, session.via, not_own, setter)
        return Authenticated(principal, session_sha256=key)

    async def _deny(self, presented: Presented, actor: str, reason: str) -> None:
        await self._audit.record(
            AuditEntry(
                actor=actor,
                kind="access.denied",
                subject=audit_text(presented.path),
                at=self._clock.now(),
                detail={
                    "method": presented.method,
                    "path": audit_text(presented.path, 2000),
                    "reason": reason,
                },
            )
        )


def audit_text(text: str, limit: int = 200) -> str:
    """What a request named, fit for the audit trail: it may be anything a client sends, but
    the trail must take it (PostgreSQL refuses NUL and text UTF-8 cannot encode)."""
    cleaned = text.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode()
    return cleaned[:limit]


def _csrf_ok(presented: Presented, stored: str) -> bool:
    header, cookie = presented.csrf_header, presented.csrf_cookie
    return (
        header is not None and cookie is not None and same(header, cookie) and same(header, stored)
    )
