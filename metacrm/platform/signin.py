"""Signing in with an email and a password, under rate limits per account and per client address:
the one door through which a password becomes a token (and, later, a browser session).

Every failure looks the same from outside — the same problem and about the same time — so a
caller can't learn whether an email has an account, or whether the account is frozen.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Engine

from metacrm.platform.db import reading
from metacrm.platform.errors import TooManyRequests, Unauthorized
from metacrm.platform.ratelimit import Limit, RateLimiter
from metacrm.platform.security import hash_password, verify_password
from metacrm.platform.settings import Settings
from metacrm.platform.users import User, password_of

REFUSED = "the email or password is not right"


@dataclass(frozen=True)
class SignInPolicy:
    per_account: Limit
    per_address: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInPolicy:
        return cls(
            per_account=Limit(settings.signin_account_attempts, settings.signin_window),
            per_address=Limit(settings.signin_address_attempts, settings.signin_window),
        )


def sign_in(
    engine: Engine,
    limiter: RateLimiter,
    policy: SignInPolicy,
    *,
    email: str,
    password: str,
    address: str | None,
) -> User:
    """The active user these credentials belong to. Raises Unauthorized (the same for an unknown
    email, a wrong password and a frozen user) or TooManyRequests (also for the right password
    while the account or the address is limited)."""
    account_key, address_key = account_limit_key(email), address_limit_key(address)
    wait = limiter.acquire({account_key: policy.per_account, address_key: policy.per_address})
    if wait is not None:
        raise TooManyRequests(
            f"too many sign-in attempts; try again in {wait} seconds", retry_after=wait
        )
    user = check_password(engine, email, password)
    if user is None:
        raise Unauthorized(REFUSED)
    # The account starts afresh; the address only gets back the attempt that succeeded, so one
    # good account can't clear the way for guessing at others from the same place.
    limiter.reset(account_key)
    limiter.release(address_key)
    return user


def check_password(engine: Engine, email: str, password: str) -> User | None:
    """The active user with this email and password, or None. Costs one argon2 verification
    whatever the answer, so its time doesn't tell an unknown email from a wrong password."""
    with reading(engine) as conn:
        found = password_of(conn, email)
    # Verified after the transaction: argon2 takes tens of milliseconds, too long to hold one.
    if found is None:
        verify_password(_dummy_hash(), password)
        return None
    user, password_hash = found
    if not verify_password(password_hash, password) or not user.is_active:
        return None
    return user


@cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows, made with the same parameters as real ones."""
    return hash_password(secrets.token_urlsafe(32))


def account_limit_key(email: str) -> str:
    """Per email as typed (normalised), whether or not an account has it, so limits don't tell
    which emails exist; hashed, as a key is stored and an email is personal data."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
    return f"signin:account:{digest}"


def address_limit_key(address: str | None) -> str:
    """Per client address; an IPv6 client counts per /64, the block one subscriber usually
    holds, so rotating through its own addresses gains nothing."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # not an IP (a test client, a Unix socket): as it is, bounded
        return f"signin:address:{(address or 'unknown')[:100]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"signin:address:{ip.ipv4_mapped}"
        return f"signin:address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"signin:address:{ip}"
