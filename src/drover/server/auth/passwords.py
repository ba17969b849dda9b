"""Passwords: argon2id hashes, verified off the event loop, the same work for unknown users."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is only a way to burn CPU


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password may have at most {MAX_LENGTH} characters"
    return None


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None, at_once: int = 4) -> None:
        self._hasher = hasher or PasswordHasher()
        # argon2 takes 64 MiB and a core for a while per hash: many logins at once must not
        # exhaust memory or starve the server's threads. The rest wait their turn (the login
        # rate limit bounds how many there may be).
        self._turns = asyncio.Semaphore(at_once)
        # Verified against when the user does not exist or has no password, so that a wrong
        # name takes as long as a wrong password and the answer's timing names no user.
        self._dummy = self._hasher.hash("no user has this password, it only takes time")

    async def hash(self, password: str) -> str:
        async with self._turns:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`; None (no password) never matches."""
        async with self._turns:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            self._hasher.verify(stored or self._dummy, password[:MAX_LENGTH])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored is not None
