"""The caller's inbox (`/notifications`): list, mark one read, mark all read. Everyone sees
only their own; someone else's notification is a 404, as if it did not exist."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from metacrm.runtime import notifications
from metacrm.runtime.api.context import runtime_of
from metacrm.runtime.api.http import JSONResponse
from metacrm.runtime.api.params import parse_bool, parse_limit


async def list_notifications(request: Request) -> Response:
    unread_only = parse_bool(request.query_params.get("unread"), "unread")
    limit = parse_limit(request.query_params.get("limit"))
    listed = await runtime_of(request).run(
        request,
        lambda w: notifications.inbox_of(w.conn, w.user.id, unread_only=unread_only, limit=limit),
    )
    return JSONResponse(listed)


async def mark_read(request: Request) -> Response:
    notification_id = request.path_params["id"]
    marked = await runtime_of(request).run(
        request,
        lambda w: notifications.mark_read(w.conn, w.user.id, notification_id),
        write=True,
    )
    return JSONResponse(marked)


async def read_all(request: Request) -> Response:
    marked = await runtime_of(request).run(
        request, lambda w: notifications.mark_all_read(w.conn, w.user.id), write=True
    )
    return JSONResponse({"marked": marked})
