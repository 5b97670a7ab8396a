"""The in-app inbox: notifications for users, written in the transaction that causes them.

Users read them through `/notifications` (runtime/api/notifications.py); with SMTP configured a
periodic job also emails them (runtime/notification_email.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select, update

from metacrm.platform.clock import iso_utc, utcnow
from metacrm.platform.errors import NotFound
from metacrm.platform.ids import new_id
from metacrm.platform.systables import notifications

inbox = notifications.c


def notify(
    conn: Connection,
    user_ids: Iterable[str],
    kind: str,
    title: str,
    body: str = "",
    *,
    entity: str | None = None,
    record_id: str | None = None,
) -> list[str]:
    """One notification per user (each user once); returns their ids."""
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "user_id": user_id,
            "kind": kind,
            "title": title[:500],
            "body": body,
            "entity": entity,
            "record_id": record_id,
            "created_at": now,
        }
        for user_id in dict.fromkeys(user_ids)
    ]
    if rows:
        conn.execute(notifications.insert(), rows)
    return [r["id"] for r in rows]


def notification_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "body": row.body,
        "entity": row.entity,
        "record_id": row.record_id,
        "created_at": iso_utc(row.created_at),
        "read_at": iso_utc(row.read_at),
    }


def inbox_of(conn: Connection, user_id: str, *, unread_only: bool, limit: int) -> dict[str, Any]:
    """A user's newest notifications, and how many are unread."""
    mine = inbox.user_id == user_id
    query = select(notifications).where(mine)
    if unread_only:
        query = query.where(inbox.read_at.is_(None))
    rows = conn.execute(query.order_by(inbox.created_at.desc(), inbox.id.desc()).limit(limit))
    unread = conn.execute(select(func.count()).where(mine, inbox.read_at.is_(None))).scalar_one()
    return {"data": [notification_json(row) for row in rows], "unread": unread}


def mark_read(conn: Connection, user_id: str, notification_id: str) -> dict[str, Any]:
    """Mark one of the user's notifications read; someone else's is not found."""
    own = (inbox.id == notification_id, inbox.user_id == user_id)
    # Reading it twice keeps the first time it was read.
    conn.execute(
        update(notifications).where(*own, inbox.read_at.is_(None)).values(read_at=utcnow())
    )
    row = conn.execute(select(notifications).where(*own)).first()
    if row is None:
        raise NotFound(f"you have no notification {notification_id!r}")
    return notification_json(row)


def mark_all_read(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute(
            update(notifications)
            .where(inbox.user_id == user_id, inbox.read_at.is_(None))
            .values(read_at=utcnow())
        ).rowcount
    )
