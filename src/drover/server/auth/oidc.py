"""Signing in through an OpenID Connect provider: authorization code flow with PKCE.

    GET /auth/oidc/login     → 302 to the provider, with state, nonce and a PKCE challenge;
                               the state is kept in the database (any server process may get
                               the callback) and in a short-lived cookie (it binds the login
                               to the browser that began it: no one can slip theirs in).
    GET /auth/oidc/callback  → the state must match that cookie and a login under way (once);
                               the code is exchanged with the verifier; the id_token must be
                               signed by a key of the provider's JWKS and name this issuer,
                               this client as audience, the nonce we sent and a time not past.

The user is named by a configured claim (`preferred_username`, else `sub`); its groups come
from the groups claim and map to grants through the config's `access:`. A first sign-in makes
an `oidc` user bound to the provider's (iss, sub): names may change or be reused at the
provider, the subject may not. Later sign-ins find the user by (iss, sub): the same subject
under a new name keeps its original drover user (and name); a name whose user is bound to
another subject is refused (403), as is a name that belongs to a local user, and a disabled
user (`drover user remove` disables an OIDC user rather than deleting it). With
`email` as the username claim, the provider must say the address is verified.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.client import OAuth2Client
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

from drover.model.access import UserSource, is_group_name, is_user_name
from drover.ops.clock import Clock
from drover.server.auth.accounts import Accounts
from drover.server.auth.credentials import same, sha256
from drover.server.auth.sessions import OpenedSession, SessionKeeper
from drover.server.auth.settings import OidcSettings
from drover.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    ServerError,
    Unauthorized,
    Unavailable,
)
from drover.store.audit import AuditEntry
from drover.store.logins import LoginStore, OidcRequest

log = logging.getLogger(__name__)

CALLBACK_PATH = "/auth/oidc/callback"
STATE_COOKIE = "drover_oidc_state"
LOGIN_TIME = timedelta(minutes=10)  # from the redirect to the provider until the callback
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
_TIMEOUT = 10.0
_LEEWAY_S = 60  # clock skew tolerated between us and the provider


@dataclass(frozen=True)
class Redirect:
    url: str
    state: str  # for the state cookie


class OidcLogin:
    def __init__(
        self,
        settings: OidcSettings,
        client_secret: str,
        redirect_base: str,
        accounts: Accounts,
        sessions: SessionKeeper,
        logins: LoginStore,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._client_secret = client_secret
        self.redirect_uri = redirect_base.rstrip("/") + CALLBACK_PATH
        self._accounts = accounts
        self._sessions = sessions
        self._logins = logins
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def begin(self) -> Redirect:
        metadata = await self._discover()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within PKCE's 43..128
        now = self._clock.now()
        await self._logins.begin_oidc(
            sha256(state), OidcRequest(nonce, verifier, now, now + LOGIN_TIME)
        )
        client = OAuth2Client(
            session=None,
            client_id=self._settings.client_id,
            redirect_uri=self.redirect_uri,
            scope=self._settings.scopes,
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
        )
        return Redirect(str(url), state)

    async def finish(
        self,
        *,
        code: str | None,
        state: str | None,
        state_cookie: str | None,
        error: str | None = None,
    ) -> OpenedSession:
        """A session for whoever the provider vouches for; a 4xx ServerError if anything does
        not check out (and no session), on the audit trail as `auth.login_failed`."""
        try:
            return await self._finish(code, state, state_cookie, error)
        except ServerError as err:
            now = self._clock.now()
            detail = {"via": "oidc", "reason": err.message}
            await self._logins.record(
                AuditEntry("anonymous", "auth.login_failed", "oidc", now, detail)
            )
            log.info("OIDC sign-in failed: %s", err.message)
            raise

    async def _finish(
        self, code: str | None, state: str | None, state_cookie: str | None, error: str | None
    ) -> OpenedSession:
        if error is not None:
            raise Unauthorized(f"the identity provider refused the sign-in: {error[:200]}")
        if not code or not state:
            raise BadRequest("the callback lacks 'code' or 'state': begin at /auth/oidc/login")
        if state_cookie is None or not same(state, state_cookie):
            raise BadRequest(
                "the sign-in state does not match this browser's: begin again at /auth/oidc/login"
            )
        pending = await self._logins.take_oidc(sha256(state))
        if pending is None or self._clock.now() >= pending.expires_at:
            raise BadRequest("unknown, used or expired sign-in: begin again at /auth/oidc/login")
        claims = await self._id_token_claims(code, pending)
        name = _username(claims, self._settings.username_claim)
        groups = _groups(claims, self._settings.groups_claim)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthorized("the id_token lacks a usable 'sub' claim")
        user = await self._remember(name, groups, (str(claims["iss"]), subject))
        return await self._sessions.open(user, "oidc")

    async def _id_token_claims(self, code: str, pending: OidcRequest) -> dict[str, Any]:
        metadata = await self._discover()
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        # client_secret_basic, which every provider must support (RFC 6749 §2.3.1: each part
        # form-encoded first).
        auth = (quote(self._settings.client_id, safe=""), quote(self._client_secret, safe=""))
        answer = await self._fetch("POST", metadata["token_endpoint"], data=body, auth=auth)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthorized("the identity provider's token answer has no id_token")
        return await self._verify(id_token, pending.nonce, metadata["issuer"])

    async def _verify(self, id_token: str, nonce: str, issuer: str) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, await self._jwks(), algorithms=SIGNING_ALGORITHMS)
        except (JoseError, ValueError):
            # A key the provider has rotated in since we last looked: look once more.
            self._keys = None
            try:
                token = jwt.decode(id_token, await self._jwks(), algorithms=SIGNING_ALGORITHMS)
            except (JoseError, ValueError) as err:
                raise Unauthorized(f"the id_token's signature does not verify ({err})") from err
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock.now().timestamp()),
            leeway=_LEEWAY_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": self._settings.client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except ExpiredTokenError as err:
            raise Unauthorized("the id_token has expired") from err
        except MissingClaimError as err:
            raise Unauthorized(f"the id_token lacks a claim: {err.description}") from err
        except JoseError as err:
            raise Unauthorized(f"the id_token is not for this sign-in: {err.description}") from err
        return dict(token.claims)

    async def _remember(self, name: str, groups: tuple[str, ...], identity: tuple[str, str]) -> str:
        """The drover user (its name) of this provider identity, made or updated so that its
        sessions have a row and admins see who signed in; a 4xx if it may not sign in."""
        bound = await self._accounts.users.by_oidc_identity(*identity)
        if bound is None:
            existing = await self._accounts.users.get(name)
            if existing is None:
                await self._accounts.add_user(
                    name, by=name, groups=groups, source=UserSource.OIDC, oidc_identity=identity
                )
                return name
            if existing.source is not UserSource.OIDC:
                raise Conflict(
                    f"the name {name!r} belongs to a local drover user; ask an admin to rename one"
                )
            if existing.oidc_subject is not None or not await self._accounts.users.bind_oidc(
                name,
                *identity,
                AuditEntry(name, "user.changed", name, self._clock.now(), {"oidc": "bound"}),
            ):
                # The provider gave this name to someone else (renamed, reused, or a claim
                # its users may edit): never a way into another person's drover user.
                raise Forbidden(
                    f"the drover user {name!r} belongs to another identity at the provider; "
                    "ask an admin"
                )
            bound = existing
        if bound.disabled:
            raise Forbidden(f"user {bound.name!r} is disabled in drover; ask an admin")
        if bound.groups != groups:
            await self._accounts.change_user(bound.name, by=bound.name, groups=groups)
        return bound.name

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await self._fetch("GET", url)
            needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if missing := [key for key in needed if not isinstance(metadata.get(key), str)]:
                raise Unavailable(f"the identity provider's discovery document lacks {missing}")
            if metadata["issuer"].rstrip("/") != self._settings.issuer.rstrip("/"):
                raise Unavailable(
                    f"the identity provider calls itself {metadata['issuer']!r}, "
                    f"not {self._settings.issuer!r}"
                )
            self._metadata = metadata
        return self._metadata

    async def _jwks(self) -> KeySet:
        if self._keys is None:
            metadata = await self._discover()
            try:
                self._keys = KeySet.import_key_set(await self._fetch("GET", metadata["jwks_uri"]))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as err:
                raise Unavailable(f"the identity provider's JWKS is unusable: {err}") from err
        return self._keys

    async def _fetch(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
                response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as err:
            raise Unavailable(f"cannot reach the identity provider at {url}: {err!r}") from err
        if response.status_code in (400, 401):
            raise Unauthorized(f"the identity provider refused: {response.text[:300]}")
        if response.is_error:
            raise Unavailable(f"the identity provider answered {response.status_code} at {url}")
        try:
            data = response.json()
        except ValueError as err:
            raise Unavailable(f"the identity provider's answer at {url} is not JSON") from err
        if not isinstance(data, dict):
            raise Unavailable(f"the identity provider's answer at {url} is not a JSON object")
        return data


def _username(claims: dict[str, Any], claim: str) -> str:
    if claim == "email" and claims.get("email") and claims.get("email_verified") is not True:
        # An address anyone may type in at the provider names no one.
        raise Unauthorized("the id_token's 'email' is not verified by the identity provider")
    name = claims.get(claim) or claims.get("sub")
    if not isinstance(name, str) or not is_user_name(name):
        raise Unauthorized(f"the id_token's {claim!r} (or 'sub') is not a usable user name")
    return name


def _groups(claims: dict[str, Any], claim: str) -> tuple[str, ...]:
    value = claims.get(claim, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(sorted({g for g in value if isinstance(g, str) and is_group_name(g)}))
