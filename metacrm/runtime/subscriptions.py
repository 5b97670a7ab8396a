"""Webhook subscriptions and their deliveries as admins manage them: validate, create, change,
delete, rotate the signing secret, list deliveries and replay one. (Matching events to
subscriptions and delivering them is runtime/webhooks.py.)"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, select, update

from metacrm.platform.clock import iso_utc, utcnow
from metacrm.platform.errors import FieldError, MetacrmError, NotFound, Unprocessable
from metacrm.platform.ids import new_id
from metacrm.platform.systables import webhook_deliveries, webhooks
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.context import RequestContext
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


def list_webhooks(ctx: RequestContext) -> list[dict[str, Any]]:
    rows = ctx.conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id))
    return [webhook_json(row) for row in rows]


def get_webhook(ctx: RequestContext, webhook_id: str) -> dict[str, Any]:
    return webhook_json(_find(ctx.conn, webhook_id))


def create_webhook(ctx: RequestContext, body: Any) -> dict[str, Any]:
    """A new subscription, with its signing secret (shown this once)."""
    values = validate(body, ctx.catalog)
    webhook_id, secret = new_id(), new_secret()
    ctx.conn.execute(
        webhooks.insert().values(
            id=webhook_id, secret=secret, created_at=utcnow(), created_by=ctx.user.id, **values
        )
    )
    return {**webhook_json(_find(ctx.conn, webhook_id)), "secret": secret}


def change_webhook(ctx: RequestContext, webhook_id: str, body: Any) -> dict[str, Any]:
    current = webhook_json(_find(ctx.conn, webhook_id))
    if not isinstance(body, dict):
        raise Unprocessable("send the properties to change as a JSON object")
    merged = {k: current[k] for k in FIELDS} | body
    values = validate(merged, ctx.catalog)
    ctx.conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(values))
    return webhook_json(_find(ctx.conn, webhook_id))


def delete_webhook(ctx: RequestContext, webhook_id: str) -> None:
    _find(ctx.conn, webhook_id)
    # Its deliveries go with it (also ON DELETE CASCADE, stated for databases without it).
    ctx.conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
    )
    ctx.conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


def rotate_secret(ctx: RequestContext, webhook_id: str) -> dict[str, Any]:
    """A new signing secret, shown once; deliveries from now on are signed with it."""
    _find(ctx.conn, webhook_id)
    secret = new_secret()
    ctx.conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(secret=secret))
    return {**webhook_json(_find(ctx.conn, webhook_id)), "secret": secret}


# ---- deliveries ------------------------------------------------------------------------------


def list_deliveries(
    ctx: RequestContext, webhook_id: str, status: str | None, limit: int
) -> dict[str, Any]:
    _find(ctx.conn, webhook_id)
    query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    total = ctx.conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = ctx.conn.execute(
        query.order_by(
            webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc()
        ).limit(limit)
    )
    return {"data": [delivery_json(row) for row in rows], "total": total}


def replay_delivery(ctx: RequestContext, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Send a delivery again from its first attempt, whatever its status; a pending one is
    tried now rather than at its next retry."""
    where = (
        webhook_deliveries.c.id == delivery_id,
        webhook_deliveries.c.webhook_id == webhook_id,
    )
    changed = ctx.conn.execute(
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
    enqueue_deliveries(ctx, [delivery_id])
    return delivery_json(ctx.conn.execute(select(webhook_deliveries).where(*where)).one())
