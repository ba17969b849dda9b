"""How the server authenticates people: session lifetimes, the login rate limit, OIDC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str  # e.g. https://id.example.com/realms/ops; its discovery document says the rest
    client_id: str
    client_secret_file: Path  # read at start; never given in plain text on a command line
    username_claim: str = "preferred_username"  # falls back to `sub` when absent
    groups_claim: str = "groups"
    scopes: str = "openid profile email"


@dataclass(frozen=True)
class AuthSettings:
    # Where people reach the server, e.g. https://drover.example.com. With https, cookies are
    # marked Secure; OIDC's redirect goes to <public_url>/auth/oidc/callback.
    public_url: str | None = None
    session_lifetime: timedelta = timedelta(hours=12)  # however active
    session_idle: timedelta = timedelta(hours=1)
    login_window: timedelta = timedelta(minutes=5)
    login_failures_per_name: int = 5  # within the window, then 429
    login_failures_per_source: int = 20  # one address, any names (an office behind one NAT)
    oidc: OidcSettings | None = None

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))
