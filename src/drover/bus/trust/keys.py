"""NKEYs: the ed25519 key pairs NATS names its identities by (`U…` users, `A…` accounts, `O…`
operators, `N…` servers), and their seeds (`S…`), which are the private keys.

`nkeys` (from the NATS authors) signs; it cannot check a signature from a public key alone, which
an agent must do with the server's key, so that part uses PyNaCl — which `nkeys` is built on —
directly."""

from __future__ import annotations

import base64
import binascii
import os
from enum import IntEnum

import nacl.exceptions
import nacl.signing
import nkeys


class Kind(IntEnum):
    OPERATOR = nkeys.PREFIX_BYTE_OPERATOR
    ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT
    USER = nkeys.PREFIX_BYTE_USER
    SERVER = nkeys.PREFIX_BYTE_SERVER


class BadKey(ValueError):
    """A string that is not an NKEY of the kind asked for."""


class KeyPair:
    """A private key, made here or read from its seed."""

    def __init__(self, seed: bytes) -> None:
        try:
            self._pair = nkeys.from_seed(bytearray(seed))
            self.public_key: str = self._pair.public_key.decode()
        except (nkeys.NkeysError, binascii.Error, ValueError) as err:
            raise BadKey(f"not an NKEY seed: {err}") from None
        self.seed = bytes(seed)

    @classmethod
    def create(cls, kind: Kind) -> KeyPair:
        return cls(nkeys.encode_seed(os.urandom(32), kind))

    @property
    def kind(self) -> Kind:
        return kind_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return bytes(self._pair.sign(data))


def kind_of(public_key: str) -> Kind:
    """The kind of a public key, having checked its checksum; BadKey if it is none."""
    raw = _decode_public(public_key)
    try:
        return Kind(raw[0])
    except ValueError:
        raise BadKey(f"{public_key[:12]}…: not an operator, account, user or server key") from None


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is `public_key`'s over `data`."""
    try:
        key = nacl.signing.VerifyKey(_decode_public(public_key)[1:])
        key.verify(data, signature)
    except (BadKey, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def _decode_public(public_key: str) -> bytes:
    """The prefix byte and the 32 key bytes of an encoded public key."""
    try:
        raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    except (binascii.Error, ValueError):
        raise BadKey(f"{public_key[:12]}…: not base32") from None
    if len(raw) != 35 or nkeys.crc16(bytearray(raw[:-2])) != int.from_bytes(raw[-2:], "little"):
        raise BadKey(f"{public_key[:12]}…: not a public NKEY (length or checksum)")
    return raw[:-2]
