"""The in-app inbox: notifications for users, written in the transaction that causes them.

Users read them through `/notifications` (runtime/api/notifications.py); with SMTP configured a
periodic job also emails them (runtime/notification_email.py)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from metacrm.platform.clock import utcnow
from metacrm.platform.ids import new_id
from metacrm.platform.systables import notifications


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
