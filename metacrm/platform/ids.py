"""Record and user ids: 26-character, time-ordered, URL-safe strings (ULID layout).

Time order keeps new rows at the end of primary-key indexes and makes `id` a useful tie-break.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def new_id() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


ID_LENGTH = 26


def is_valid_id(value: object) -> bool:
    """Whether `value` could name something we store: text of 1 to 26 characters without NUL.
    Every lookup by an id from a client asks this first: a longer value can't exist, and
    PostgreSQL refuses NUL outright instead of finding nothing."""
    return isinstance(value, str) and 0 < len(value) <= ID_LENGTH and "\x00" not in value
