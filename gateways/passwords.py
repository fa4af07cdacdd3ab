"""Password hashing with argon2id; only hashes are ever stored.

Hashing and verifying cost tens of milliseconds of CPU on purpose. The ``*_off_loop``
forms run them in a worker thread (argon2 releases the GIL), so a burst of sign-ins does
not stall every other request of the process while it hashes.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_off_loop(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_off_loop(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def generate_password() -> str:
    """A random password for accounts the platform creates itself."""
    return secrets.token_urlsafe(18)
