"""Passwords of the users tests create: each a real argon2 hash (signing in verifies it), made
once per password for the whole run instead of once per user — a hash costs about 0.1 s, and
thousands of tests create users."""

from __future__ import annotations

from functools import cache

from metacrm.platform.security import hash_password


@cache
def password_hash(password: str) -> str:
    return hash_password(password)
