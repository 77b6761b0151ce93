"""Password hashing with argon2id, off the event loop (hashing is deliberately CPU-heavy)."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_EXPECTED = (VerifyMismatchError, VerificationError, InvalidHashError)


class Passwords:
    """Hashes and checks passwords in a worker thread. `hasher` can be made cheaper in tests."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's recommended parameters
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """True when `password` matches; with no hash, spends the same time and answers False."""
        return await asyncio.to_thread(self._verify, hashed, password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(hashed or self._dummy, password)) and hashed is not None
        except _EXPECTED:
            return False

    def needs_rehash(self, hashed: str) -> bool:
        return bool(self._hasher.check_needs_rehash(hashed))


def cheap_hasher() -> PasswordHasher:
    """Still argon2id, with small costs: for tests only."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def generate_password() -> str:
    return secrets.token_urlsafe(15)
