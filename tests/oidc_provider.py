"""A small OpenID Connect provider for tests: a real HTTP server on loopback.

It serves discovery, its JWKS, an authorization endpoint that signs in a preset user at once
(no login page), and a token endpoint that checks the client's secret, the redirect URI and the
PKCE verifier and issues an RS256 id_token. A test may make it misbehave — another nonce or
audience, an expired token, a signature by a key not in its JWKS — to see drover refuse.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

from drover.server.http import HttpServer

CLIENT_ID = "drover"
CLIENT_SECRET = "s3cret-of-the-drover-client"
KEY_ID = "test-key-1"


@dataclass
class Grant:
    """What the authorization endpoint handed out for one code."""

    challenge: str
    nonce: str
    redirect_uri: str
    claims: dict[str, Any]


@dataclass
class OidcProvider:
    """Start with `await provider.start()`; `issuer` is its URL."""

    # The user the authorization endpoint signs in.
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "u-1001",
            "preferred_username": "olga",
            "groups": ["team-shop"],
        }
    )
    # Claims to put into the next id_tokens instead of the right ones (None: leave a claim out).
    tamper: dict[str, Any] = field(default_factory=dict)
    sign_with_rogue_key: bool = False
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, Grant] = field(default_factory=dict)
    _http: HttpServer | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig"})
        # Same key id, different key: a token it signs must not verify.
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID})

    @property
    def issuer(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.port}"

    async def start(self) -> None:
        self._http = HttpServer(self._app(), "127.0.0.1", 0)
        self._task = asyncio.create_task(self._http.serve())
        await asyncio.sleep(0)  # the socket is bound and listening already

    async def stop(self) -> None:
        if self._http is not None and self._task is not None:
            self._http.stop()
            await asyncio.wait_for(self._task, 10)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @app.get("/authorize")
        async def authorize(
            client_id: str,
            redirect_uri: str,
            response_type: str,
            state: str,
            nonce: str,
            code_challenge: str,
            code_challenge_method: str,
            scope: str = Query(""),
        ) -> RedirectResponse:
            if client_id != CLIENT_ID or response_type != "code" or "openid" not in scope:
                raise HTTPException(400, "bad authorization request")
            if code_challenge_method != "S256":
                raise HTTPException(400, "PKCE with S256 required")
            code = secrets.token_urlsafe(16)
            self._codes[code] = Grant(code_challenge, nonce, redirect_uri, dict(self.user))
            query = urlencode({"code": code, "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

        @app.post("/token")
        async def token(request: Request, authorization: str = Header("")) -> JSONResponse:
            # Parsed by hand: FastAPI's Form() needs python-multipart, which drover does not.
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            grant_type, code = form.get("grant_type", ""), form.get("code", "")
            redirect_uri, code_verifier = form.get("redirect_uri"), form.get("code_verifier", "")
            self.token_requests.append(form)
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if authorization != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self._codes.pop(code, None)
            if grant is None or grant_type != "authorization_code":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if redirect_uri != grant.redirect_uri or _challenge(code_verifier) != grant.challenge:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self._id_token(grant),
                }
            )

        return app

    def _id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.claims,
        }
        for name, value in self.tamper.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.rogue_key if self.sign_with_rogue_key else self.key
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
