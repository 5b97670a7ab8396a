"""The caller's inbox (`/notifications`): list, mark one read, mark all read. Everyone sees
only their own; someone else's notification is a 404, as if it did not exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.clock import iso_utc, utcnow
from metacrm.platform.errors import NotFound
from metacrm.platform.systables import notifications
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse
from metacrm.runtime.api.operation import Param, operation, page, ref
from metacrm.runtime.api.params import parse_bool, parse_limit
from metacrm.runtime.listing import MAX_LIMIT

TAG = "notifications"
inbox = notifications.c


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


@operation(
    "list_notifications",
    TAG,
    "The caller's notifications, newest first",
    params=(
        Param("unread", {"type": "boolean"}, "Only unread ones"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most"),
    ),
    response=page(
        ref("Notification"), ("unread",), unread={"type": "integer", "description": "Unread"}
    ),
)
async def list_notifications(request: Request) -> Response:
    unread_only = parse_bool(request.query_params.get("unread"), "unread")
    limit = parse_limit(request.query_params.get("limit"))

    def listed(work: Work) -> dict[str, Any]:
        mine = inbox.user_id == work.user.id
        query = select(notifications).where(mine)
        if unread_only:
            query = query.where(inbox.read_at.is_(None))
        rows = work.conn.execute(
            query.order_by(inbox.created_at.desc(), inbox.id.desc()).limit(limit)
        )
        unread = work.conn.execute(
            select(func.count()).where(mine, inbox.read_at.is_(None))
        ).scalar_one()
        return {"data": [notification_json(row) for row in rows], "unread": unread}

    return JSONResponse(await runtime_of(request).run(request, listed))


@operation("mark_read", TAG, "Mark a notification read", response=ref("Notification"))
async def mark_read(request: Request) -> Response:
    notification_id = request.path_params["id"]

    def mark(work: Work) -> dict[str, Any]:
        own = (inbox.id == notification_id, inbox.user_id == work.user.id)
        # Reading it twice keeps the first time it was read.
        work.conn.execute(
            update(notifications).where(*own, inbox.read_at.is_(None)).values(read_at=utcnow())
        )
        row = work.conn.execute(select(notifications).where(*own)).first()
        if row is None:
            raise NotFound(f"you have no notification {notification_id!r}")
        return notification_json(row)

    return JSONResponse(await runtime_of(request).run(request, mark, write=True))


@operation(
    "read_all",
    TAG,
    "Mark every notification of the caller read",
    response={
        "type": "object",
        "required": ["marked"],
        "properties": {"marked": {"type": "integer", "description": "How many were unread"}},
    },
)
async def read_all(request: Request) -> Response:
    def mark(work: Work) -> dict[str, int]:
        marked = work.conn.execute(
            update(notifications)
            .where(inbox.user_id == work.user.id, inbox.read_at.is_(None))
            .values(read_at=utcnow())
        ).rowcount
        return {"marked": marked}

    return JSONResponse(await runtime_of(request).run(request, mark, write=True))
