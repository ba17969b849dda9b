"""Signed actions: the server signs the exact bytes of every action and abort it sends with its
signer key, in a header beside them; the agent checks them with the signer's public key, which
it was given when it enrolled, before it reads anything else. So nobody else on the bus — not a
host, not someone holding a stolen bus credential of the server — can make an agent run
anything: what the agent runs is what the server signed, for this host, before its deadline.
Replays are refused by the agent's ledger, which remembers every action id it has taken."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from drover.bus.trust.keys import KeyPair, verify

SIGNATURE_HEADER = "Drover-Signature"
SIGNER_HEADER = "Drover-Signer"


def sign(signer: KeyPair, payload: bytes) -> dict[str, str]:
    """The headers that carry `signer`'s signature of `payload`."""
    return {
        SIGNATURE_HEADER: base64.b64encode(signer.sign(payload)).decode(),
        SIGNER_HEADER: signer.public_key,
    }


def refusal(headers: Mapping[str, str] | None, payload: bytes, signer: str) -> str | None:
    """Why a message is not signed by `signer` (a public key), or None when it is."""
    signature = (headers or {}).get(SIGNATURE_HEADER)
    if not signature:
        return "unsigned"
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return "signature unreadable"
    if not verify(signer, payload, raw):
        return "signature does not match (tampered with, or not signed by this server)"
    return None
