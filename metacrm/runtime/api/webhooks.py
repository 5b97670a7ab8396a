"""Webhook subscriptions and their deliveries (`/webhooks`), for admins: create, change and
delete subscriptions, rotate their signing secret, list deliveries and replay one."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, select, update
from starlette.requests import Request
from starlette.responses import Response

from metacrm.platform.clock import iso_utc, utcnow
from metacrm.platform.errors import BadRequest, FieldError, MetacrmError, NotFound, Unprocessable
from metacrm.platform.ids import new_id
from metacrm.platform.systables import webhook_deliveries, webhooks
from metacrm.runtime.api.context import Work, runtime_of
from metacrm.runtime.api.http import JSONResponse, read_json
from metacrm.runtime.api.params import parse_limit
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, compile_filter, parse, sql_compatible
from metacrm.runtime.rules import ast as rule_ast
from metacrm.runtime.rules.operators import BOOLEAN
from metacrm.runtime.webhooks import EVENT_TYPES, NO_USER, enqueue_deliveries

FIELDS = ("name", "url", "entity", "events", "condition", "active")
REQUIRED = ("name", "url", "events")
STATUSES = ("pending", "delivered", "failed")
MAX_NAME = 200
MAX_URL = 2000
MAX_CONDITION = 10_000


def webhook_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "entity": row.entity,
        "events": list(row.events),
        "condition": row.condition,
        "active": row.active,
        "created_at": iso_utc(row.created_at),
        "created_by": row.created_by,
    }


def delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "event_type": row.event_type,
        "event_id": row.event_id,
        "status": row.status,
        "attempts": row.attempts,
        "response_code": row.response_code,
        "last_error": row.last_error,
        "next_attempt_at": iso_utc(row.next_attempt_at),
        "created_at": iso_utc(row.created_at),
        "delivered_at": iso_utc(row.delivered_at),
    }


# ---- validation (pure over the body and the catalog) -----------------------------------------


def validate(body: Any, catalog: Catalog) -> dict[str, Any]:
    """The subscription's stored values from a complete body, or a 422 naming each bad field."""
    if not isinstance(body, dict):
        raise Unprocessable("a webhook must be a JSON object", errors=[FieldError("", "type", "")])
    errors = [
        FieldError(k, "unknown_field", "not a property of a webhook")
        for k in sorted(set(body) - set(FIELDS))
    ]
    errors += [
        FieldError(k, "required", f"{k} is required")
        for k in REQUIRED
        if body.get(k) in (None, "", [])
    ]
    for key, check_value in _CHECKS.items():
        if body.get(key) is not None and not any(e.field == key for e in errors):
            errors += check_value(body[key], catalog)
    entity = body.get("entity")
    condition = body.get("condition")
    if condition and not errors:
        errors += _condition_errors(condition, entity, catalog)
    if errors:
        raise Unprocessable("the webhook is not valid", errors=errors)
    return {
        "name": body["name"].strip(),
        "url": body["url"],
        "entity": entity,
        "events": list(body["events"]),
        "condition": condition or None,
        "active": body.get("active", True) is not False,
    }


def _name_errors(value: Any, _catalog: Catalog) -> list[FieldError]:
    if not isinstance(value, str) or not value.strip():
        return [FieldError("name", "type", "must be a non-empty text")]
    if len(value) > MAX_NAME:
        return [FieldError("name", "too_long", f"at most {MAX_NAME} characters")]
    if "\x00" in value:
        # PostgreSQL can't store it; refused on every database alike.
        return [FieldError("name", "format", "must not contain NUL characters")]
    return []


def _url_errors(value: Any, _catalog: Catalog) -> list[FieldError]:
    if not isinstance(value, str):
        return [FieldError("url", "type", "must be an http:// or https:// URL")]
    if len(value) > MAX_URL:
        return [FieldError("url", "too_long", f"at most {MAX_URL} characters")]
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        return [FieldError("url", "format", "is not a valid URL")]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [FieldError("url", "format", "must be an http:// or https:// URL with a host")]
    if any(c.isspace() or ord(c) < 32 for c in value):
        return [FieldError("url", "format", "must not contain spaces or control characters")]
    return []


def _entity_errors(value: Any, catalog: Catalog) -> list[FieldError]:
    if not isinstance(value, str):
        return [FieldError("entity", "type", "must be an entity name, or null for every entity")]
    if catalog.find(value) is None:
        return [FieldError("entity", "unknown_entity", f"there is no entity {value!r}")]
    return []


def _events_errors(value: Any, _catalog: Catalog) -> list[FieldError]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [FieldError("events", "type", 'must be a list of event types, or ["*"]')]
    unknown = [v for v in value if v != "*" and v not in EVENT_TYPES]
    if unknown:
        known = ", ".join(EVENT_TYPES)
        return [FieldError("events", "unknown_event", f"unknown {unknown[0]!r}; use * or {known}")]
    if len(set(value)) != len(value):
        return [FieldError("events", "duplicate", "an event type appears twice")]
    return []


def _condition_type_errors(value: Any, _catalog: Catalog) -> list[FieldError]:
    if not isinstance(value, str):
        return [FieldError("condition", "type", "must be a rule-language expression")]
    if len(value) > MAX_CONDITION:
        return [FieldError("condition", "too_long", f"at most {MAX_CONDITION} characters")]
    return []


def _active_errors(value: Any, _catalog: Catalog) -> list[FieldError]:
    return [] if isinstance(value, bool) else [FieldError("active", "type", "must be a boolean")]


_CHECKS = {
    "name": _name_errors,
    "url": _url_errors,
    "entity": _entity_errors,
    "events": _events_errors,
    "condition": _condition_type_errors,
    "active": _active_errors,
}


def _condition_errors(
    condition: str, entity_name: str | None, catalog: Catalog
) -> list[FieldError]:
    """The condition is checked in SQL against the event's record, with no user in view."""
    entity = catalog.find(entity_name) if entity_name else None
    if entity is None:
        return [FieldError("condition", "needs_entity", "a condition needs an entity to check")]
    scope = Scope(entity, catalog.find)
    try:
        checked = check(parse(condition), scope, expect=BOOLEAN)
        reason = sql_compatible(checked, scope)
        if reason is None and _mentions_user(checked.node):
            reason = "$user has no value here: a webhook is dispatched for no user"
        if reason:
            return [FieldError("condition", "not_sql", reason)]
        table = catalog.table(entity.name)
        compile_filter(condition, entity, table, catalog.table, catalog.find, NO_USER, utcnow())
    except MetacrmError as error:
        return [FieldError("condition", "expression", error.detail)]
    return []


def _mentions_user(node: rule_ast.Node) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, rule_ast.UserRef):
            return True
        stack.extend(current.children())
    return False


# ---- subscriptions ---------------------------------------------------------------------------


def _find(conn: Connection, webhook_id: str) -> Any:
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if row is None:
        raise NotFound(f"there is no webhook {webhook_id!r}")
    return row


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


async def list_webhooks(request: Request) -> Response:
    def listed(work: Work) -> list[dict[str, Any]]:
        rows = work.conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id))
        return [webhook_json(row) for row in rows]

    return JSONResponse({"data": await runtime_of(request).run(request, listed, admin=True)})


async def create_webhook(request: Request) -> Response:
    body = await read_json(request)

    def create(work: Work) -> dict[str, Any]:
        values = validate(body, work.catalog)
        webhook_id, secret = new_id(), new_secret()
        work.conn.execute(
            webhooks.insert().values(
                id=webhook_id,
                secret=secret,
                created_at=utcnow(),
                created_by=work.user.id,
                **values,
            )
        )
        return {**webhook_json(_find(work.conn, webhook_id)), "secret": secret}

    created = await runtime_of(request).run(request, create, write=True, admin=True)
    location = f"/api/v1/webhooks/{created['id']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})


async def get_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]
    found = await runtime_of(request).run(
        request, lambda w: webhook_json(_find(w.conn, webhook_id)), admin=True
    )
    return JSONResponse(found)


async def change_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]
    body = await read_json(request)

    def change(work: Work) -> dict[str, Any]:
        current = webhook_json(_find(work.conn, webhook_id))
        if not isinstance(body, dict):
            raise Unprocessable("send the properties to change as a JSON object")
        merged = {k: current[k] for k in FIELDS} | body
        values = validate(merged, work.catalog)
        work.conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(values))
        return webhook_json(_find(work.conn, webhook_id))

    return JSONResponse(await runtime_of(request).run(request, change, write=True, admin=True))


async def delete_webhook(request: Request) -> Response:
    webhook_id = request.path_params["id"]

    def remove(work: Work) -> None:
        _find(work.conn, webhook_id)
        # Its deliveries go with it (also ON DELETE CASCADE, stated for databases without it).
        work.conn.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        work.conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))

    await runtime_of(request).run(request, remove, write=True, admin=True)
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    """A new signing secret, shown once; deliveries from now on are signed with it."""
    webhook_id = request.path_params["id"]

    def rotate(work: Work) -> dict[str, Any]:
        _find(work.conn, webhook_id)
        secret = new_secret()
        work.conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(secret=secret))
        return {**webhook_json(_find(work.conn, webhook_id)), "secret": secret}

    return JSONResponse(await runtime_of(request).run(request, rotate, write=True, admin=True))


# ---- deliveries ------------------------------------------------------------------------------


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

    def listed(work: Work) -> dict[str, Any]:
        _find(work.conn, webhook_id)
        query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        total = work.conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = work.conn.execute(
            query.order_by(
                webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc()
            ).limit(limit)
        )
        return {"data": [delivery_json(row) for row in rows], "total": total}

    return JSONResponse(await runtime_of(request).run(request, listed, admin=True))


async def replay_delivery(request: Request) -> Response:
    """Send a delivery again from its first attempt, whatever its status; a pending one is
    tried now rather than at its next retry."""
    webhook_id, delivery_id = request.path_params["id"], request.path_params["delivery"]

    def replay(work: Work) -> dict[str, Any]:
        where = (
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.webhook_id == webhook_id,
        )
        changed = work.conn.execute(
            update(webhook_deliveries)
            .where(*where)
            .values(
                status="pending",
                attempts=0,
                response_code=None,
                last_error=None,
                next_attempt_at=utcnow(),
                delivered_at=None,
            )
        ).rowcount
        if not changed:
            raise NotFound(f"webhook {webhook_id!r} has no delivery {delivery_id!r}")
        enqueue_deliveries(work.conn, [delivery_id])
        return delivery_json(work.conn.execute(select(webhook_deliveries).where(*where)).one())

    replayed = await runtime_of(request).run(request, replay, write=True, admin=True)
    return JSONResponse(replayed, status_code=202)
