"""Everything authentication needs, built once at the composition root and handed to the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from drover.config.schema import FleetConfig
from drover.ops.clock import Clock
from drover.server.auth.accounts import Accounts
from drover.server.auth.authenticator import Authenticator
from drover.server.auth.oidc import OidcLogin
from drover.server.auth.passwords import Passwords
from drover.server.auth.sessions import SessionKeeper
from drover.server.auth.settings import AuthSettings, issuer_problem
from drover.store.audit import AuditLog
from drover.store.logins import LoginStore
from drover.store.sessions import SessionStore


class AuthSetupError(Exception):
    """Authentication cannot be set up as configured (an unreadable OIDC client secret)."""


@dataclass(frozen=True)
class Access:
    settings: AuthSettings
    accounts: Accounts
    authenticator: Authenticator
    sessions: SessionKeeper
    oidc: OidcLogin | None


def build_access(
    engine: AsyncEngine,
    audit: AuditLog,
    clock: Clock,
    settings: AuthSettings,
    config: Callable[[], FleetConfig | None],
    passwords: Passwords | None = None,
) -> Access:
    passwords = passwords or Passwords(at_once=settings.password_checks_at_once)
    lifetime = settings.oidc.token_lifetime if settings.oidc is not None else None
    accounts = Accounts(engine, clock, passwords, oidc_token_lifetime=lifetime)
    session_store = SessionStore(engine)
    logins = LoginStore(engine)
    keeper = SessionKeeper(accounts.users, session_store, logins, passwords, clock, settings)
    authenticator = Authenticator(accounts.tokens, session_store, audit, clock, settings, config)
    oidc = None
    if settings.oidc is not None:
        if problem := issuer_problem(settings.oidc.issuer):
            raise AuthSetupError(problem)
        if not settings.public_url:
            raise AuthSetupError("OIDC needs the server's public URL for its redirect")
        try:
            secret = settings.oidc.client_secret_file.read_text().strip()
        except OSError as err:
            raise AuthSetupError(
                f"OIDC client secret file {settings.oidc.client_secret_file}: {err.strerror or err}"
            ) from err
        if not secret:
            raise AuthSetupError(
                f"OIDC client secret file {settings.oidc.client_secret_file} is empty"
            )
        oidc = OidcLogin(
            settings.oidc, secret, settings.public_url, accounts, keeper, logins, clock
        )
    return Access(settings, accounts, authenticator, keeper, oidc)
