"""Password hashes: argon2id with the library's current parameters, rehashed on sign-in when
those parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
# Bound before hashing: argon2 hashes any length, an attacker's megabyte password costs memory.
MAX_LENGTH = 256

_hasher = PasswordHasher()
# Compared against when the login is unknown, so both cases cost one argon2 verification.
_DUMMY = _hasher.hash("aquacis-dummy-password")


class WeakPassword(ValueError):
    """The password cannot be used (too short, too long, or blank)."""


def check_policy(password: str) -> None:
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password longer than {MAX_LENGTH} characters")
    if len(password.strip()) < MIN_LENGTH:
        raise WeakPassword(f"password shorter than {MIN_LENGTH} characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash to store when the parameters changed, else None). A missing or
    malformed stored hash never matches; the cost is paid anyway."""
    if len(password) > MAX_LENGTH:
        return False, None
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)
