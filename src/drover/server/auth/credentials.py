"""The random secrets of authentication, and how they are kept: only as SHA-256.

Every secret carries 256 random bits, so a fast hash suffices to store it (a slow one is for
passwords, which people choose). API tokens start with `drv_` so secret scanners can find one
pasted where it should not be.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "drv_"  # noqa: S105 (a prefix, not a secret)


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_token_id() -> str:
    return secrets.token_hex(8)


def is_token_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def new_password() -> str:
    return secrets.token_urlsafe(18)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(given: str, expected: str) -> bool:
    """Compare in constant time, so timing does not reveal how much of a secret was right."""
    return hmac.compare_digest(given.encode(), expected.encode())
