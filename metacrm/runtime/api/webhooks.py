"""Webhook subscriptions and their deliveries (`/webhooks`), for admins: create, change and
delete subscriptions, rotate their signing secret, list deliveries and replay one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.errors import BadRequest
from metacrm.runtime import subscriptions
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.params import parse_limit
from metacrm.runtime.subscriptions import STATUSES


async def list_webhooks(request: Request) -> Response:
    found = await runtime_of(request).run(request, subscriptions.list_webhooks, admin=True)
    return JSONResponse({"data": found})


async def create_webhook(request: Request) -> Response:
    body = await read_json(request)
    created = await runtime_of(request).run(
        request, lambda w: subscriptions.create_webhook(w, body), write=True, admin=True
    )
    location = f"/api/v1/webhooks/{created['id']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})


async def get_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]
    found = await runtime_of(request).run(
        request, lambda w: subscriptions.get_webhook(w, webhook_id), admin=True
    )
    return JSONResponse(found)


async def change_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]
    body = await read_json(request)
    changed = await runtime_of(request).run(
        request,
        lambda w: subscriptions.change_webhook(w, webhook_id, body),
        write=True,
        admin=True,
    )
    return JSONResponse(changed)


async def delete_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]

    def remove(work: Work) -> None:
        subscriptions.delete_webhook(work, webhook_id)

    await runtime_of(request).run(request, remove, write=True, admin=True)
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    """A new signing secret, shown once; deliveries from now on are signed with it."""
    webhook_id = request.path_params["id"]
    rotated = await runtime_of(request).run(
        request, lambda w: subscriptions.rotate_secret(w, webhook_id), write=True, admin=True
    )
    return JSONResponse(rotated)


def _status(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    return raw


async def list_deliveries(request: Request) -> Response:
    webhook_id = request.path_params["id"]
    status = _status(request.query_params.get("status"))
    limit = parse_limit(request.query_params.get("limit"))
    listed = await runtime_of(request).run(
        request,
        lambda w: subscriptions.list_deliveries(w, webhook_id, status, limit),
        admin=True,
    )
    return JSONResponse(listed)


async def replay_delivery(request: Request) -> Response:
    """Send a delivery again from its first attempt, whatever its status; a pending one is
    tried now rather than at its next retry."""
    webhook_id, delivery_id = request.path_params["id"], request.path_params["delivery"]
    replayed = await runtime_of(request).run(
        request,
        lambda w: subscriptions.replay_delivery(w, webhook_id, delivery_id),
        write=True,
        admin=True,
    )
    return JSONResponse(replayed, status_code=202)
