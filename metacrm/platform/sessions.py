"""Browser sessions: what a signed-in browser's cookie stands for.

The cookie holds a random token; the database keeps only its SHA-256 (a stolen table opens no
session) with the session's CSRF token, when it was last used and when it ends. A session ends
after `idle` seconds without a request, at `expires_at` in any case, when its user signs out,
when they sign out everywhere, and when the user is deactivated (the lookup joins active users).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from metacrm.platform.clock import as_utc
from metacrm.platform.systables import (
    browser_sessions,
    meta_stamp,
    user_preferences,
    user_roles,
    users,
)
from metacrm.platform.users import User, user_from_row

# How often last_seen_at is written: a page view a minute after the last one moves the idle
# deadline; the views in between cost no write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser: its user, the CSRF token its forms carry, the user's preferences and
    the metadata stamp this request's transaction sees; `stale` when its idle deadline should
    move (`touch_session`)."""

    id: str
    user: User
    csrf_token: str
    meta_stamp: int
    locale: str | None
    time_zone: str | None
    stale: bool = False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(
    conn: Connection,
    user: User,
    now: datetime,
    *,
    lifetime: int,
    user_agent: str = "",
    address: str = "",
) -> str:
    """Start a session for the user; returns the token for the cookie (its only appearance)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        browser_sessions.insert().values(
            id=_digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=lifetime),
            user_agent=user_agent[:300],
            address=address[:64],
        )
    )
    return token


_lookup = (
    select(
        browser_sessions.c.id.label("session_id"),
        browser_sessions.c.csrf_token,
        browser_sessions.c.last_seen_at,
        browser_sessions.c.expires_at,
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.is_admin,
        users.c.is_active,
        users.c.org_unit_id,
        users.c.manager_id,
        user_roles.c.role.label("role"),
        user_preferences.c.locale,
        user_preferences.c.time_zone,
        select(meta_stamp.c.stamp).where(meta_stamp.c.id == 1).scalar_subquery().label("stamp"),
    )
    .join(users, users.c.id == browser_sessions.c.user_id)
    .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
    .outerjoin(user_preferences, user_preferences.c.user_id == users.c.id)
    .where(users.c.is_active.is_(True))
    .order_by(user_roles.c.role)
)


def find_session(
    conn: Connection, token: str, now: datetime, *, idle: int
) -> BrowserSession | None:
    """The live session the cookie's token opens, or None (unknown, ended, idle too long, or
    its user deactivated). Reads only: a read transaction can look a session up."""
    if not token or len(token) > 200:
        return None
    session_id = _digest(token)
    rows = conn.execute(_lookup.where(browser_sessions.c.id == session_id)).all()
    if not rows:
        return None
    first = rows[0]
    last_seen, expires = as_utc(first.last_seen_at), as_utc(first.expires_at)
    if now >= expires or now - last_seen >= timedelta(seconds=idle):
        return None
    roles = [r.role for r in rows if r.role is not None]
    return BrowserSession(
        id=session_id,
        user=user_from_row(first._mapping, roles),
        csrf_token=first.csrf_token,
        meta_stamp=first.stamp or 0,
        locale=first.locale,
        time_zone=first.time_zone,
        stale=now - last_seen >= TOUCH_EVERY,
    )


def touch_session(conn: Connection, session_id: str, now: datetime) -> None:
    """Move the session's idle deadline (done at most once a minute: see `stale`)."""
    conn.execute(
        update(browser_sessions).where(browser_sessions.c.id == session_id).values(last_seen_at=now)
    )


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(browser_sessions).where(browser_sessions.c.id == session_id))


def close_all_sessions(conn: Connection, user_id: str) -> int:
    """Sign the user out everywhere; returns how many sessions ended."""
    result = conn.execute(delete(browser_sessions).where(browser_sessions.c.user_id == user_id))
    return result.rowcount or 0


def forget_ended_sessions(conn: Connection, now: datetime, *, idle: int) -> int:
    """Delete sessions past their end or idle too long (a periodic clean-up)."""
    result = conn.execute(
        delete(browser_sessions).where(
            (browser_sessions.c.expires_at <= now)
            | (browser_sessions.c.last_seen_at <= now - timedelta(seconds=idle))
        )
    )
    return result.rowcount or 0


def set_preferences(
    conn: Connection, user_id: str, *, locale: str | None = None, time_zone: str | None = None
) -> None:
    """Store the user's language and/or time zone (None leaves one as it is)."""
    values = {k: v for k, v in (("locale", locale), ("time_zone", time_zone)) if v is not None}
    if not values:
        return
    table = user_preferences
    found = conn.execute(select(table.c.user_id).where(table.c.user_id == user_id)).first()
    if found is None:
        conn.execute(table.insert().values(user_id=user_id, **values))
    else:
        conn.execute(update(table).where(table.c.user_id == user_id).values(**values))
