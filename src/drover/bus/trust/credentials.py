"""What a client shows nats-server: a user JWT and, to prove it holds the JWT's key, the nonce of
each connect signed with that key. The JWT is asked for at every (re)connect, so credentials
renewed on disk or minted anew are used from the next connect on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drover.bus.trust.keys import KeyPair


@dataclass(frozen=True)
class BusIdentity:
    key: KeyPair
    user_jwt: Callable[[], str]

    @classmethod
    def from_files(cls, seed_file: Path, jwt_file: Path) -> BusIdentity:
        """An agent's: its key, and its JWT as last renewed (read at each connect)."""
        return cls(KeyPair(seed_file.read_bytes().strip()), lambda: jwt_file.read_text().strip())
