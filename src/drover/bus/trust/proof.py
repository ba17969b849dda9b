"""Proof that a host holds the key it names: it signs what it asks for (enroll, renew), for
which host and when, with that key. The server checks the signature and that the time is
recent, so a request copied off the wire is useless elsewhere and soon useless everywhere —
and what it obtains (a JWT for that key) works only with the private key, which never left
the host."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from drover.bus.trust.keys import KeyPair, verify

WINDOW = timedelta(minutes=5)


def _text(purpose: str, host: str, public_key: str, at: datetime) -> bytes:
    """What is signed. The time is in one form, whatever form the request gave it in: UTC, to
    the second, `2026-12-01T10:30:00Z`."""
    when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"drover-{purpose}\n{host}\n{public_key}\n{when}".encode()


def prove(key: KeyPair, purpose: str, host: str, at: datetime) -> str:
    return base64.b64encode(key.sign(_text(purpose, host, key.public_key, at))).decode()


def signed_request(
    key: KeyPair, purpose: str, host: str, at: datetime | None = None
) -> dict[str, str]:
    """The body of an enroll or renew request, proven by `key` (signed now, unless `at`)."""
    at = at or datetime.now(UTC).replace(microsecond=0)
    return {
        "host": host,
        "public_key": key.public_key,
        "signed_at": at.isoformat(),
        "signature": prove(key, purpose, host, at),
    }


def refusal(
    purpose: str,
    host: str,
    public_key: str,
    at: datetime,
    signature: str,
    now: datetime,
) -> str | None:
    """Why the proof does not hold, or None when it does."""
    if abs(now - at) > WINDOW:
        return f"signed at {at.isoformat()}, more than {WINDOW} from the server's clock"
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return "signature is not base64"
    if not verify(public_key, _text(purpose, host, public_key, at), raw):
        return "signature does not match the key"
    return None
