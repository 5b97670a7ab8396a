"""Users and their API tokens: create, change, freeze, look up, and authenticate a bearer token.

A user has roles (names of role documents; what they grant is the runtime's business), at most
one org unit, and at most one manager. "admin" is not a role document: it is the `is_admin` flag,
which bypasses data scopes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from metacrm.platform.clock import as_utc, iso_utc, utcnow
from metacrm.platform.errors import Conflict, FieldError, Forbidden, NotFound, Unprocessable
from metacrm.platform.ids import is_valid_id, new_id
from metacrm.platform.org import ancestors_of_user, unit_exists
from metacrm.platform.security import hash_password, hash_token, is_password_hash, new_token
from metacrm.platform.systables import (
    api_tokens,
    browser_sessions,
    meta_stamp,
    user_roles,
    users,
)

_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
MIN_PASSWORD_LENGTH = 8
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str = ""
    roles: tuple[str, ...] = ()
    is_admin: bool = False
    org_unit: str | None = None
    manager: str | None = None
    is_active: bool = True

    @property
    def role(self) -> str | None:
        """The first role, which `$user.role` names in rules."""
        return ADMIN_ROLE if self.is_admin and not self.roles else (self.roles or (None,))[0]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "roles": list(self.roles),
            "is_admin": self.is_admin,
            "org_unit": self.org_unit,
            "manager": self.manager,
            "is_active": self.is_active,
        }


@dataclass(frozen=True)
class UserChange:
    """What may change about a user; None leaves a part as it is (`clear` names parts to unset)."""

    name: str | None = None
    roles: Sequence[str] | None = None
    is_admin: bool | None = None
    org_unit: str | None = None
    manager: str | None = None
    is_active: bool | None = None
    password: str | None = None
    clear: frozenset[str] = field(default_factory=frozenset)


def create_user(
    conn: Connection,
    *,
    email: str,
    password: str | None = None,
    password_hash: str | None = None,
    name: str = "",
    roles: Sequence[str] = (),
    is_admin: bool = False,
    org_unit: str | None = None,
    manager: str | None = None,
) -> User:
    """A new user with a password, or with the argon2 hash of one (users moved from another
    installation keep their passwords; nothing here sees them in plain text)."""
    errors = []
    if not isinstance(email, str) or not _EMAIL.match(email) or len(email) > 320:
        errors.append(FieldError("email", "format", "must be an email address"))
    errors += text_errors("name", name, 200) + text_errors("roles", roles, 63)
    if password_hash is None:
        errors.extend(_password_errors(password))
    elif password is not None or not is_password_hash(password_hash):
        message = "give a password or the argon2 hash of one, not both"
        errors.append(FieldError("password_hash", "format", message))
    errors.extend(_reference_errors(conn, None, org_unit, manager))
    if errors:
        raise Unprocessable("invalid user", errors=errors)
    email = email.strip().lower()
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"a user with email {email} already exists")
    user_id = new_id()
    conn.execute(
        users.insert().values(
            id=user_id,
            email=email,
            name=name,
            password_hash=password_hash or hash_password(str(password)),
            is_admin=is_admin,
            is_active=True,
            org_unit_id=org_unit,
            manager_id=manager,
            created_at=utcnow(),
        )
    )
    _set_roles(conn, user_id, roles)
    return get_user(conn, user_id)


def change_user(conn: Connection, user_id: str, change: UserChange) -> User:
    """Apply a change; freezing (is_active false) revokes every token of the user at once, and a
    new password ends their browser sessions (whoever knew the old one is signed out)."""
    current = get_user(conn, user_id)
    org_unit = _kept(change.org_unit, current.org_unit, "org_unit" in change.clear)
    manager = _kept(change.manager, current.manager, "manager" in change.clear)
    errors = _reference_errors(conn, user_id, org_unit, manager)
    errors += text_errors("name", change.name, 200) + text_errors("roles", change.roles, 63)
    if change.password is not None:
        errors.extend(_password_errors(change.password))
    if errors:
        raise Unprocessable("invalid user", errors=errors)
    values: dict[str, Any] = {"org_unit_id": org_unit, "manager_id": manager}
    if change.name is not None:
        values["name"] = change.name
    if change.is_admin is not None:
        values["is_admin"] = change.is_admin
    if change.is_active is not None:
        values["is_active"] = change.is_active
    if change.password is not None:
        values["password_hash"] = hash_password(change.password)
    conn.execute(update(users).where(users.c.id == user_id).values(values))
    if change.roles is not None:
        _set_roles(conn, user_id, change.roles)
    if change.password is not None or change.is_active is False:
        conn.execute(delete(browser_sessions).where(browser_sessions.c.user_id == user_id))
    if change.is_active is False:
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return get_user(conn, user_id)


def _set_roles(conn: Connection, user_id: str, roles: Iterable[str]) -> None:
    conn.execute(delete(user_roles).where(user_roles.c.user_id == user_id))
    unique = list(dict.fromkeys(roles))
    if unique:
        conn.execute(user_roles.insert(), [{"user_id": user_id, "role": r} for r in unique])


def _kept(new: str | None, current: str | None, clear: bool) -> str | None:
    """A reference after a change: cleared, replaced (even by a bad value, which the reference
    check then refuses), or kept."""
    return None if clear else current if new is None else new


def text_errors(name: str, value: Any, max_length: int) -> list[FieldError]:
    """Text every database can store: no NUL, not too long (each item of a list too)."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, str) and ("\x00" in item or len(item) > max_length):
            return [FieldError(name, "text", f"at most {max_length} characters, no NUL")]
    return []


def _password_errors(password: Any) -> list[FieldError]:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        message = f"must be at least {MIN_PASSWORD_LENGTH} characters"
        return [FieldError("password", "min_length", message)]
    return []


def _reference_errors(
    conn: Connection, user_id: str | None, org_unit: str | None, manager: str | None
) -> list[FieldError]:
    errors = []
    for name, value in (("org_unit", org_unit), ("manager", manager)):
        if value is not None and not is_valid_id(value):
            return [FieldError(name, "not_found", f"no {name.replace('_', ' ')} {value!r}")]
    if org_unit is not None and not unit_exists(conn, org_unit):
        errors.append(FieldError("org_unit", "not_found", f"no org unit with id {org_unit!r}"))
    if manager is not None:
        if not conn.execute(select(users.c.id).where(users.c.id == manager)).first():
            errors.append(FieldError("manager", "not_found", f"no user with id {manager!r}"))
        elif user_id is not None and user_id in ancestors_of_user(conn, manager) | {manager}:
            errors.append(
                FieldError("manager", "cycle", "would make the user their own manager's manager")
            )
    return errors


def get_user(conn: Connection, user_id: str) -> User:
    found = _load(conn, users.c.id == user_id)
    if not found:
        raise NotFound(f"no user with id {user_id!r}")
    return found[0]


def find_user(conn: Connection, email: str) -> User:
    found = _load(conn, users.c.email == email.strip().lower())
    if not found:
        raise NotFound(f"no user with email {email}")
    return found[0]


def list_users(conn: Connection) -> list[User]:
    return _load(conn, None)


def _load(conn: Connection, where: Any) -> list[User]:
    stmt = select(users).order_by(users.c.email)
    if where is not None:
        stmt = stmt.where(where)
    rows = conn.execute(stmt).all()
    roles: dict[str, list[str]] = {}
    ids = [r.id for r in rows]
    if ids:
        for user_id, role in conn.execute(
            select(user_roles.c.user_id, user_roles.c.role)
            .where(user_roles.c.user_id.in_(ids))
            .order_by(user_roles.c.role)
        ):
            roles.setdefault(user_id, []).append(role)
    return [user_from_row(r._mapping, roles.get(r.id, ())) for r in rows]


def create_token(conn: Connection, user: User, name: str = "api") -> str:
    """Store a new token for the user and return it; only its hash is kept."""
    return issue_token(conn, user, name).token


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token after it was made: never the token or its hash."""

    id: str
    user: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "created_at": iso_utc(self.created_at),
            "revoked_at": iso_utc(self.revoked_at),
        }


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: the only time its secret is known."""

    info: TokenInfo
    token: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.info.id,
            "name": self.info.name,
            "token": self.token,
            "created_at": iso_utc(self.info.created_at),
        }


def issue_token(conn: Connection, user: User, name: str = "api") -> IssuedToken:
    """Store a new token for the user; only its hash is kept, so the answer is the one chance
    to see it."""
    errors = text_errors("name", name, 200)
    if not isinstance(name, str) or not name.strip() or errors:
        raise Unprocessable(
            "invalid token name",
            errors=errors or [FieldError("name", "required", "must be a non-empty text")],
        )
    token = new_token()
    info = TokenInfo(id=new_id(), user=user.id, name=name, created_at=utcnow())
    conn.execute(
        api_tokens.insert().values(
            id=info.id,
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            created_at=info.created_at,
        )
    )
    return IssuedToken(info, token)


def visible_tokens(conn: Connection, actor: User, user_id: str | None = None) -> list[TokenInfo]:
    """The actor's own tokens, or (admins only) another user's."""
    if user_id is None or user_id == actor.id:
        return list_tokens(conn, actor.id)
    if not actor.is_admin:
        raise Forbidden("only admins may see other users' tokens")
    if len(user_id) > 26 or "\x00" in user_id:
        raise NotFound(f"no user with id {user_id!r}")
    return list_tokens(conn, get_user(conn, user_id).id)


def list_tokens(conn: Connection, user_id: str) -> list[TokenInfo]:
    """The user's tokens, revoked ones too, newest first."""
    rows = conn.execute(
        select(api_tokens)
        .where(api_tokens.c.user_id == user_id)
        .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id.desc())
    ).all()
    return [_token_info(r._mapping) for r in rows]


def revoke_token(conn: Connection, actor: User, token_id: str) -> TokenInfo:
    """Revoke a token at once (again is no change). Admins may revoke anyone's; anyone else only
    their own, and someone else's token is as unknown to them as one that doesn't exist."""
    where = [api_tokens.c.id == token_id]
    if not actor.is_admin:
        where.append(api_tokens.c.user_id == actor.id)
    conn.execute(
        update(api_tokens)
        .where(*where, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    row = conn.execute(select(api_tokens).where(*where)).first()
    if row is None:
        raise NotFound(f"no token with id {token_id!r}")
    return _token_info(row._mapping)


def _token_info(m: Any) -> TokenInfo:
    revoked = m["revoked_at"]
    return TokenInfo(
        id=m["id"],
        user=m["user_id"],
        name=m["name"],
        created_at=as_utc(m["created_at"]),
        revoked_at=None if revoked is None else as_utc(revoked),
    )


def password_of(conn: Connection, email: str) -> tuple[User, str] | None:
    """The user with this email and their password hash, frozen or not; None if there is none."""
    row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    if row is None:
        return None
    return get_user(conn, row.id), row.password_hash


# Built once: the token lookup runs on every authenticated request. It brings the user's roles
# (one row per role) and the metadata stamp along, so a request needs one round trip before
# its real work.
_token_lookup = (
    select(
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.is_admin,
        users.c.is_active,
        users.c.org_unit_id,
        users.c.manager_id,
        user_roles.c.role.label("role"),
        select(meta_stamp.c.stamp).where(meta_stamp.c.id == 1).scalar_subquery().label("stamp"),
    )
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
    .where(api_tokens.c.revoked_at.is_(None), users.c.is_active.is_(True))
    .order_by(user_roles.c.role)
)


@dataclass(frozen=True)
class Session:
    """Who is calling, and the metadata stamp their transaction sees."""

    user: User
    meta_stamp: int


def authenticate(conn: Connection, token: str) -> Session | None:
    rows = conn.execute(_token_lookup.where(api_tokens.c.token_hash == hash_token(token))).all()
    if not rows:
        return None
    roles = [r.role for r in rows if r.role is not None]
    return Session(user_from_row(rows[0]._mapping, roles), rows[0].stamp or 0)


def user_from_row(m: Any, roles: Iterable[str]) -> User:
    """A user from a row of mc_users (as a mapping) and their roles."""
    return User(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        roles=tuple(roles),
        is_admin=bool(m["is_admin"]),
        org_unit=m["org_unit_id"],
        manager=m["manager_id"],
        is_active=bool(m["is_active"]),
    )


def user_names(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """The display name (else the email) of each of these users, by id; unknown ids left out."""
    wanted = sorted({i for i in ids if isinstance(i, str)})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(users.c.id, users.c.name, users.c.email).where(users.c.id.in_(chunk))
        )
        found.update({r.id: r.name or r.email for r in rows})
    return found


def active_users(conn: Connection, limit: int = 1000) -> list[tuple[str, str]]:
    """(id, display name) of active users by name: what a form offers for a user field."""
    rows = conn.execute(
        select(users.c.id, users.c.name, users.c.email)
        .where(users.c.is_active.is_(True))
        .order_by(users.c.name, users.c.email)
        .limit(limit)
    )
    return [(r.id, r.name or r.email) for r in rows]
