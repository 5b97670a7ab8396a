"""Webhooks: matching events to subscriptions, and delivering them signed, with retries.

A subscription names an entity (or all), event types (or "*") and optionally a rule-language
condition, checked in SQL against the record as it is when the event is dispatched. Each
(subscription, event) pair gets one delivery row — the unique key makes dispatching twice
harmless — and the delivery task posts it until the receiver answers 2xx or the attempts are
used up. Receivers should deduplicate on `X-Metacrm-Delivery`: a worker that dies after the
receiver answered but before recording it delivers the same delivery again.

Signature: `X-Metacrm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed
with the subscription's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from metacrm.metadata.model import EntityDef
from metacrm.platform.clock import iso_utc, utcnow
from metacrm.platform.db import after_commit, reading, writing
from metacrm.platform.errors import MetacrmError
from metacrm.platform.ids import new_id
from metacrm.platform.registry import RetryPolicy
from metacrm.platform.systables import events, webhook_deliveries, webhooks
from metacrm.platform.tasks import RetryLater, TaskHost
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.context import RequestContext
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.rules import compile_filter

DELIVER_TASK = "webhooks.deliver"
log = logging.getLogger("metacrm.webhooks")
TIMEOUT_SECONDS = 10.0
RESPONSE_EXCERPT = 500
# Conditions run for no user: `user.…` has no value in them.
NO_USER = {"id": None, "role": None, "org_unit": None}
EVENT_TYPES = (
    "record.created",
    "record.updated",
    "record.deleted",
    "record.restored",
    "stage.changed",
    "approval.submitted",
    "approval.step_approved",
    "approval.approved",
    "approval.rejected",
    "approval.recalled",
    "approval.reassigned",
    "action.executed",
)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: the signature matches and is recent (replays are refused)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    # isascii: "²".isdigit() is true, and int() refuses it.
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a hostile header).
    return hmac.compare_digest(sign(secret, int(stamp), body).encode(), header.encode())


def condition_matches(
    conn: Connection, catalog: Catalog, entity: EntityDef, record_id: str, condition: str
) -> bool:
    """Whether the record, as stored now, meets the subscription's condition (one SQL query)."""
    table = catalog.table(entity.name)
    clause, compiler = compile_filter(
        condition,
        entity,
        table,
        catalog.table,
        catalog.find,
        NO_USER,
        utcnow(),
    )
    stmt = compiler.apply(select(table.c.id).where(table.c.id == record_id, clause))
    return conn.execute(stmt).first() is not None


def matching_hooks(conn: Connection, event: Any) -> list[Any]:
    """Active subscriptions to the event's entity and type (their conditions not yet checked)."""
    found = conn.execute(_ACTIVE_FOR_ENTITY, {"entity": event.entity}).all()
    return [h for h in found if "*" in h.events or event.type in h.events]


# Built once: every record write runs it.
_ACTIVE_FOR_ENTITY = select(webhooks).where(
    webhooks.c.active.is_(True),
    or_(webhooks.c.entity.is_(None), webhooks.c.entity == bindparam("entity")),
)


def create_deliveries(
    conn: Connection, catalog: Catalog, event: Any, hooks: Sequence[Any] | None = None
) -> list[str]:
    """A pending delivery for every matching subscription whose condition the record meets;
    returns their ids."""
    created = []
    for hook in matching_hooks(conn, event) if hooks is None else hooks:
        if hook.condition:
            entity = catalog.find(event.entity or "")
            if entity is None or event.record_id is None:
                continue
            try:
                if not condition_matches(conn, catalog, entity, event.record_id, hook.condition):
                    continue
            except MetacrmError:
                # The entity changed since the condition was written; it matches nothing now.
                continue
        exists = conn.execute(
            select(webhook_deliveries.c.id).where(
                webhook_deliveries.c.webhook_id == hook.id,
                webhook_deliveries.c.event_id == event.id,
            )
        ).first()
        if exists:
            continue
        delivery_id = new_id()
        conn.execute(
            webhook_deliveries.insert().values(
                id=delivery_id,
                webhook_id=hook.id,
                event_id=event.id,
                event_type=event.type,
                status="pending",
                attempts=0,
                next_attempt_at=utcnow(),
                created_at=utcnow(),
            )
        )
        created.append(delivery_id)
    return created


def enqueue_deliveries(ctx: RequestContext, delivery_ids: Sequence[str]) -> None:
    """Hand the deliveries to the task queue once this transaction commits."""
    if not delivery_ids:
        return
    host = ctx.host

    def send() -> None:
        try:
            for delivery_id in delivery_ids:
                host.queue.enqueue(DELIVER_TASK, delivery_id)
        except Exception:
            # Committed already; the sweep re-enqueues pending deliveries whose message is lost.
            log.exception("could not enqueue deliveries %s; the sweep will", list(delivery_ids))

    after_commit(ctx.conn, send)


def delivery_body(delivery_id: str, event: Any) -> bytes:
    created = event.created_at
    return json.dumps(
        {
            "id": delivery_id,
            "event": event.type,
            "event_id": event.id,
            "created_at": iso_utc(created),
            "data": event.payload,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How often a delivery is tried: up to `max_attempts`, the first retry after
    `retry_base_seconds`, each next one twice as long (5 s … ~10 min by default)."""

    max_attempts: int = 8
    retry_base_seconds: float = 5.0

    def retry_in(self, attempts: int) -> float:
        return RetryPolicy(base=self.retry_base_seconds).backoff(attempts)


class Deliverer:
    """The delivery task: posts one delivery, signed. Keeps one HTTP client per process, made
    after any fork: a client per delivery would cost more than the POST (each builds a TLS
    context from the CA bundle) and reuse no connection."""

    def __init__(self, policy: DeliveryPolicy) -> None:
        self.policy = policy
        self._clients: dict[int, httpx.Client] = {}
        self._lock = threading.Lock()

    def deliver(self, host: TaskHost, delivery_id: str) -> None:
        """Post one delivery. Idempotent: a delivery no longer pending is left alone."""
        loaded = _load(host.engine, delivery_id)
        if loaded is None:
            return
        delivery, hook, event = loaded
        body = delivery_body(delivery_id, event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "metacrm-webhooks",
            "X-Metacrm-Event": event.type,
            "X-Metacrm-Delivery": delivery_id,
            "X-Metacrm-Signature": sign(hook.secret, int(time.time()), body),
        }
        code: int | None = None
        error: str | None = None
        try:
            response = self._client().post(hook.url, content=body, headers=headers)
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}: {response.text}"[:RESPONSE_EXCERPT]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT]
        retry_in = self._record_attempt(host, delivery, code, error)
        if retry_in is not None:
            raise RetryLater(retry_in, f"webhook answered {code or error}")

    def _client(self) -> httpx.Client:
        pid = os.getpid()
        with self._lock:
            client = self._clients.get(pid)
            if client is None:
                client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
                self._clients[pid] = client
            return client

    def _record_attempt(
        self, host: TaskHost, delivery: Any, code: int | None, error: str | None
    ) -> float | None:
        """Write the attempt's outcome; returns seconds until the next attempt, or None when
        the delivery is finished (delivered, failed for good, or finished by someone else)."""
        now = host.clock()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "response_code": code, "last_error": error}
        retry_in: float | None = None
        if error is None:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
        elif attempts >= self.policy.max_attempts:
            values.update(status="failed", next_attempt_at=None)
        else:
            retry_in = self.policy.retry_in(attempts)
            values.update(next_attempt_at=now + timedelta(seconds=retry_in))
        with writing(host.engine) as conn:
            changed = conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == delivery.id,
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.attempts == delivery.attempts,
                )
                .values(values)
            ).rowcount
        return retry_in if changed else None


def register(registry: RuntimeRegistry, policy: DeliveryPolicy | None = None) -> None:
    registry.task(DELIVER_TASK, Deliverer(policy or DeliveryPolicy()).deliver)


def _load(engine: Engine, delivery_id: str) -> tuple[Any, Any, Any] | None:
    with reading(engine) as conn:
        delivery = conn.execute(
            select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        ).first()
        if delivery is None or delivery.status != "pending":
            return None
        hook = conn.execute(select(webhooks).where(webhooks.c.id == delivery.webhook_id)).first()
        event = conn.execute(select(events).where(events.c.id == delivery.event_id)).first()
        if hook is None or event is None:
            return None
        return delivery, hook, event
