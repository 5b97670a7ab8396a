"""Dispatching events to their consumers: webhook subscriptions (a delivery per match) and the
inbox (a record assigned to someone else tells its new owner).

Normally an event is consumed inside the transaction that publishes it (`consume`, registered
with the event bus): its deliveries and notifications commit with the change, and the
deliveries are enqueued after commit. An event left undispatched (a consumer failed, or the
process had none) is dispatched by the task, which claims it by stamping `dispatched_at` in the
same transaction that records its consumers' work, so a dispatch that runs twice — the
after-commit hand-over and the sweep racing — does the work once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, Engine, select, update

from metacrm.platform.clock import utcnow
from metacrm.platform.db import writing
from metacrm.platform.events import DISPATCH_TASK, Event, consume_in_transaction, on_publish
from metacrm.platform.systables import events, webhook_deliveries
from metacrm.platform.tasks import TaskContext, periodic, queue_for, task
from metacrm.runtime.catalog import Catalog, CatalogCache
from metacrm.runtime.notifications import notify
from metacrm.runtime.webhooks import (
    DELIVER_TASK,
    create_deliveries,
    enqueue_deliveries,
    matching_hooks,
)

SWEEP_TASK = "events.sweep"
# An event not dispatched this long after it was written lost its hand-over (a process died
# between commit and enqueue); the sweep dispatches it.
STALE_AFTER = timedelta(seconds=10)
# A pending delivery whose retry is this much overdue lost its queued message.
OVERDUE_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500

log = logging.getLogger("metacrm.events")
_catalogs: dict[int, CatalogCache] = {}


def _catalog(conn: Connection) -> Catalog:
    cache = _catalogs.setdefault(id(conn.engine), CatalogCache())
    return cache.snapshot(conn)


def _announce(engine: Engine, event_ids: list[int]) -> None:
    queue = queue_for(engine)
    if queue is not None and event_ids:
        queue.enqueue(DISPATCH_TASK, event_ids)


on_publish(_announce)


@task(DISPATCH_TASK)
def dispatch(context: TaskContext, event_ids: Sequence[int]) -> None:
    for event_id in event_ids:
        dispatch_one(context.engine, int(event_id))


def dispatch_one(engine: Engine, event_id: int) -> bool:
    """Hand one event to its consumers; False when it was dispatched already."""
    with writing(engine) as conn:
        claimed = conn.execute(
            update(events)
            .where(events.c.id == event_id, events.c.dispatched_at.is_(None))
            .values(dispatched_at=utcnow())
        ).rowcount
        if not claimed:
            return False
        row = conn.execute(select(events).where(events.c.id == event_id)).one()
        consume(conn, Event(**{k: row._mapping[k] for k in Event.__dataclass_fields__}))
        return True


def consume(conn: Connection, event: Event) -> None:
    """Record what the event means for its consumers, in the caller's transaction. The common
    case — no subscription matches, nobody is assigned — costs one query and writes nothing."""
    hooks = matching_hooks(conn, event)
    assignee = _assignee(event)
    if not hooks and assignee is None:
        return
    # Conditions run as SQL against the record: a broken one must not fail the change itself.
    with conn.begin_nested():
        catalog = _catalog(conn)
        enqueue_deliveries(conn, create_deliveries(conn, catalog, event, hooks))
        if assignee is not None:
            _notify_assignment(conn, catalog, event, assignee)


consume_in_transaction(consume)


def _assignee(event: Event) -> str | None:
    """Who a record was created for or handed to, when that is not who did it."""
    if event.type not in ("record.created", "record.updated"):
        return None
    owner = (event.payload.get("changes") or {}).get("owner")
    if not owner or not owner[1] or owner[1] == event.actor:
        return None
    return str(owner[1])


def _notify_assignment(conn: Connection, catalog: Catalog, event: Event, assignee: str) -> None:
    entity = catalog.find(event.entity or "")
    noun = entity.label.get("en", entity.name) if entity else event.entity
    record = event.payload.get("record") or {}
    title = record.get(entity.title_field) if entity and entity.title_field else None
    notify(
        conn,
        [assignee],
        "record.assigned",
        f"{noun} assigned to you: {title or event.record_id}",
        str(record.get("id", "")),
        entity=event.entity,
        record_id=event.record_id,
    )


@periodic(SWEEP_TASK, every=30.0)
def sweep(context: TaskContext) -> None:
    """Dispatch events whose hand-over was lost; re-enqueue deliveries whose retry was lost."""
    now = context.clock()
    with writing(context.engine) as conn:
        stale = conn.execute(
            select(events.c.id)
            .where(events.c.dispatched_at.is_(None), events.c.created_at < now - STALE_AFTER)
            .order_by(events.c.id)
            .limit(SWEEP_BATCH)
        ).scalars()
        stale_ids = list(stale)
        overdue = now - OVERDUE_AFTER - timedelta(seconds=context.settings.task_visibility_timeout)
        lost = list(
            conn.execute(
                select(webhook_deliveries.c.id)
                .where(
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.next_attempt_at < overdue,
                )
                .limit(SWEEP_BATCH)
            ).scalars()
        )
    for event_id in stale_ids:
        try:
            dispatch_one(context.engine, event_id)
        except Exception:
            # One event that can't be dispatched must not hold up the others behind it.
            log.exception("sweep: event %s could not be dispatched", event_id)
    for delivery_id in lost:
        context.queue.enqueue(DELIVER_TASK, delivery_id)
