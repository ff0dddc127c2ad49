"""New secrets of accounts: argon2id password hashes and generated API keys.

Passwords chosen by people get argon2id (RFC 9106), memory-hard like the scrypt
hashes already in configs, which keep verifying (`api/auth.py`). Generated API
keys carry 256 random bits, so a slow hash buys nothing against guessing: they
are stored as SHA-256 and checked in a microsecond. A key is shown once, when
it is made; its first characters (`og_<id>_`) name it in lists and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's second recommended option (64 MiB, t=3, p=4).
_HASHER = PasswordHasher()
KEY_PREFIX = "og_"
_KEY_ID_BYTES = 4
_KEY_SECRET_BYTES = 32


def hash_password(password: str) -> str:
    """`$argon2id$v=19$...` for a password chosen by a person."""
    return _HASHER.hash(password)


def new_api_key() -> tuple[str, str, str]:
    """(key to show once, its public id, its stored hash)."""
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(_KEY_SECRET_BYTES)}"
    return key, key_id, "sha256$" + hashlib.sha256(key.encode()).hexdigest()


def is_other_hash(encoded: str) -> bool:
    """True for the hashes made here (argon2, sha256) rather than api/auth.py's scrypt."""
    return encoded.startswith(("$argon2", "sha256$"))


def check_other_hash(encoded: str) -> None:
    """Raise ValueError saying what is wrong with an argon2 or sha256 hash."""
    if encoded.startswith("sha256$"):
        digest = encoded[7:]
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("expected sha256$ and 64 hex digits")
        return
    try:
        _HASHER.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        raise ValueError("malformed argon2 hash") from None


def verify_other(secret: str, encoded: str) -> bool:
    """Check a secret against an argon2 or sha256 hash; a malformed hash is False."""
    if encoded.startswith("sha256$"):
        return hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), encoded[7:])
    try:
        return _HASHER.verify(encoded, secret)
    except (VerificationError, InvalidHashError):
        return False
