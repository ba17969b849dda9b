"""How the server authenticates people: session lifetimes, the login rate limit, OIDC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str  # e.g. https://id.example.com/realms/ops; its discovery document says the rest
    client_id: str
    client_secret_file: Path  # read at start; never given in plain text on a command line
    username_claim: str = "preferred_username"  # falls back to `sub` when absent
    groups_claim: str = "groups"
    scopes: str = "openid profile email"
    # API tokens of OIDC users end within this: the provider may disable someone, and a token
    # would outlive that by its whole lifetime otherwise.
    token_lifetime: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class AuthSettings:
    # Where people reach the server, e.g. https://drover.example.com. With https, cookies are
    # marked Secure; OIDC's redirect goes to <public_url>/auth/oidc/callback.
    public_url: str | None = None
    session_lifetime: timedelta = timedelta(hours=12)  # however active
    session_idle: timedelta = timedelta(hours=1)
    # The login rate limit (docs/operations.md, "The login rate limit"). Failed (and pending)
    # logins within the window, then 429:
    login_window: timedelta = timedelta(minutes=5)
    login_failures_per_name: int = 5  # one name from one address: guessing from there
    login_failures_per_source: int = 20  # one address, any names (an office behind one NAT)
    # One name from everywhere (guessing spread over many addresses): a short window, so it
    # slows guessing down without locking the owner out for long; and never from an address
    # the name signed in from within `login_known_for`.
    login_name_window: timedelta = timedelta(minutes=1)
    login_failures_per_name_anywhere: int = 10
    login_known_for: timedelta = timedelta(days=30)
    # Password checks at once in this process: argon2 takes 64 MiB each. More wait their turn.
    password_checks_at_once: int = 4
    # Addresses of reverse proxies whose X-Forwarded-For (and -Proto) is believed; no others,
    # so that no caller can choose the address the rate limit counts.
    trusted_proxies: tuple[str, ...] = ()
    oidc: OidcSettings | None = None

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))


def issuer_problem(issuer: str) -> str | None:
    """Why `issuer` cannot be an OIDC issuer, or None. Keys and tokens come from there: over
    plain http anyone on the way could sign in as anyone; only loopback (a provider on this
    machine, as in tests) may do without TLS."""
    try:
        parts = urlsplit(issuer)
        host = parts.hostname or ""
    except ValueError:
        return f"{issuer!r} is not a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host and _loopback(host):
        return None
    return f"{issuer!r}: the OIDC issuer must be an https:// URL (http only on loopback)"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
