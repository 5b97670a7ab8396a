"""Users and their API tokens: create, look up, and authenticate a bearer token."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, select

from metacrm.platform.clock import utcnow
from metacrm.platform.errors import Conflict, FieldError, NotFound, Unprocessable
from metacrm.platform.ids import new_id
from metacrm.platform.security import hash_password, hash_token, new_token
from metacrm.platform.systables import api_tokens, meta_stamp, users

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str = ""
    role: str | None = None
    is_admin: bool = False


def create_user(
    conn: Connection,
    *,
    email: str,
    password: str,
    name: str = "",
    role: str | None = None,
    is_admin: bool = False,
) -> User:
    errors = []
    if not _EMAIL.match(email):
        errors.append(FieldError("email", "format", "must be an email address"))
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(
            FieldError(
                "password", "min_length", f"must be at least {MIN_PASSWORD_LENGTH} characters"
            )
        )
    if errors:
        raise Unprocessable("invalid user", errors=errors)
    email = email.strip().lower()
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"a user with email {email} already exists")
    user = User(id=new_id(), email=email, name=name, role=role, is_admin=is_admin)
    conn.execute(
        users.insert().values(
            id=user.id,
            email=email,
            name=name,
            password_hash=hash_password(password),
            role=role,
            is_admin=is_admin,
            is_active=True,
            created_at=utcnow(),
        )
    )
    return user


def find_user(conn: Connection, email: str) -> User:
    row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    if row is None:
        raise NotFound(f"no user with email {email}")
    return _user(row)


def create_token(conn: Connection, user: User, name: str = "api") -> str:
    """Store a new token for the user and return it; only its hash is kept."""
    token = new_token()
    conn.execute(
        api_tokens.insert().values(
            id=new_id(),
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            created_at=utcnow(),
        )
    )
    return token


# Built once: the token lookup runs on every authenticated request. It brings the metadata
# stamp along, so a request needs one round trip before its real work.
_token_lookup = (
    select(
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.role,
        users.c.is_admin,
        select(meta_stamp.c.stamp).where(meta_stamp.c.id == 1).scalar_subquery().label("stamp"),
    )
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(api_tokens.c.revoked_at.is_(None), users.c.is_active.is_(True))
)


@dataclass(frozen=True)
class Session:
    """Who is calling, and the metadata stamp their transaction sees."""

    user: User
    meta_stamp: int


def authenticate(conn: Connection, token: str) -> Session | None:
    row = conn.execute(_token_lookup.where(api_tokens.c.token_hash == hash_token(token))).first()
    return Session(_user(row), row.stamp or 0) if row else None


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        id=m["id"], email=m["email"], name=m["name"], role=m["role"], is_admin=bool(m["is_admin"])
    )
