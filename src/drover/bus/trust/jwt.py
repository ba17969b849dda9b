"""NATS JWTs (version 2), as nats-server reads them: operator, account and user claims, each
signed by the key above it with ed25519.

A JWT is `header.claims.signature`, each part base64url without padding; the header is fixed,
and `jti` is the base32 SHA-512/256 of the claims without it, as the NATS Go library makes it.
The one library on PyPI that writes these calls itself untested and pins old dependencies, so
the ~60 lines are here, checked by nats-server itself in the tests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from drover.bus.trust.keys import KeyPair, verify

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1


class BadJwt(ValueError):
    """Not a JWT drover can read, or not signed by whom it says."""


@dataclass(frozen=True)
class Permissions:
    """NATS subject permissions: only what is allowed, everything else refused."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()

    def claims(self) -> dict[str, Any]:
        return {"pub": {"allow": list(self.publish)}, "sub": {"allow": list(self.subscribe)}}


def operator_claims(name: str, system_account: str) -> dict[str, Any]:
    return {"name": name, "nats": {"system_account": system_account, "type": "operator"}}


def account_claims(
    name: str, *, jetstream: bool, revocations: dict[str, int] | None = None
) -> dict[str, Any]:
    limits: dict[str, Any] = {
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
        "imports": UNLIMITED,
        "exports": UNLIMITED,
        "wildcards": True,
        "conn": UNLIMITED,
        "leaf": UNLIMITED,
    }
    if jetstream:
        limits |= {
            "mem_storage": UNLIMITED,
            "disk_storage": UNLIMITED,
            "streams": UNLIMITED,
            "consumer": UNLIMITED,
        }
    nats: dict[str, Any] = {"limits": limits, "type": "account"}
    if revocations:
        nats["revocations"] = dict(revocations)
    return {"name": name, "nats": nats}


def user_claims(name: str, permissions: Permissions) -> dict[str, Any]:
    return {
        "name": name,
        "nats": {
            **permissions.claims(),
            "subs": UNLIMITED,
            "data": UNLIMITED,
            "payload": UNLIMITED,
            "type": "user",
        },
    }


def encode(
    claims: dict[str, Any],
    *,
    subject: str,
    issuer: KeyPair,
    issued_at: int,
    expires_at: int | None = None,
) -> str:
    """Sign `claims` about `subject` (a public key) with `issuer`."""
    body = dict(claims, sub=subject, iss=issuer.public_key, iat=issued_at, jti="")
    body["nats"] = dict(body["nats"], version=2)
    if expires_at is not None:
        body["exp"] = expires_at
    body["jti"] = _claims_id(body)
    signing_input = f"{_b64(_json(_HEADER))}.{_b64(_json(body))}"
    signature = issuer.sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def decode(token: str, issuer: str | None = None) -> dict[str, Any]:
    """The claims of `token`, having checked that it is signed by its `iss` (and that that is
    `issuer`, when given). BadJwt otherwise."""
    try:
        header_b64, claims_b64, signature_b64 = token.strip().split(".")
        claims = json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, binascii.Error) as err:
        raise BadJwt(f"not a JWT: {err}") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise BadJwt("not a JWT: no issuer")
    if issuer is not None and claims["iss"] != issuer:
        raise BadJwt(f"issued by {claims['iss'][:12]}…, not {issuer[:12]}…")
    if not verify(claims["iss"], f"{header_b64}.{claims_b64}".encode(), signature):
        raise BadJwt("signature does not match its issuer")
    return claims


def _claims_id(body: dict[str, Any]) -> str:
    digest = hashlib.new("sha512_256", _json(body)).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
