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

from sqlalchemy import select, update

from metacrm.platform.events import DISPATCH_TASK, Event
from metacrm.platform.systables import events, webhook_deliveries
from metacrm.runtime.context import RequestContext
from metacrm.runtime.notifications import notify
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services
from metacrm.runtime.webhooks import (
    DELIVER_TASK,
    create_deliveries,
    enqueue_deliveries,
    matching_hooks,
)

SWEEP_TASK = "events.sweep"
SWEEP_EVERY_SECONDS = 30.0
# An event not dispatched this long after it was written lost its hand-over (a process died
# between commit and enqueue); the sweep dispatches it.
STALE_AFTER = timedelta(seconds=10)
# A pending delivery whose retry is this much overdue lost its queued message.
OVERDUE_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500

log = logging.getLogger("metacrm.events")


def register(registry: RuntimeRegistry) -> None:
    """The dispatcher consumes events in their transaction; the task and the sweep take what
    was left over."""
    registry.consume_events(consume)
    registry.task(DISPATCH_TASK, dispatch)
    registry.task(SWEEP_TASK, sweep, every=SWEEP_EVERY_SECONDS)


def dispatch(services: Services, event_ids: Sequence[int]) -> None:
    for event_id in event_ids:
        dispatch_one(services, int(event_id))


def dispatch_one(services: Services, event_id: int) -> bool:
    """Hand one event to its consumers; False when it was dispatched already."""
    with services.writing() as conn:
        claimed = conn.execute(
            update(events)
            .where(events.c.id == event_id, events.c.dispatched_at.is_(None))
            .values(dispatched_at=services.clock())
        ).rowcount
        if not claimed:
            return False
        row = conn.execute(select(events).where(events.c.id == event_id)).one()
        event = Event(**{k: row._mapping[k] for k in Event.__dataclass_fields__})
        ctx = services.system_context(conn)
        for consumer in services.registry.event_consumers:
            consumer(ctx, event)
        return True


def consume(ctx: RequestContext, event: Event) -> None:
    """Record what the event means for its consumers, in the caller's transaction. The common
    case — no subscription matches, nobody is assigned — costs one query and writes nothing."""
    conn = ctx.conn
    hooks = matching_hooks(conn, event)
    assignee = _assignee(event)
    if not hooks and assignee is None:
        return
    # Conditions run as SQL against the record: a broken one must not fail the change itself.
    with conn.begin_nested():
        enqueue_deliveries(ctx, create_deliveries(conn, ctx.catalog, event, hooks))
        if assignee is not None:
            _notify_assignment(ctx, event, assignee)


def _assignee(event: Event) -> str | None:
    """Who a record was created for or handed to, when that is not who did it."""
    if event.type not in ("record.created", "record.updated"):
        return None
    owner = (event.payload.get("changes") or {}).get("owner")
    if not owner or not owner[1] or owner[1] == event.actor:
        return None
    return str(owner[1])


def _notify_assignment(ctx: RequestContext, event: Event, assignee: str) -> None:
    entity = ctx.catalog.find(event.entity or "")
    noun = entity.label.get("en", entity.name) if entity else event.entity
    record = event.payload.get("record") or {}
    title = record.get(entity.title_field) if entity and entity.title_field else None
    notify(
        ctx.conn,
        [assignee],
        "record.assigned",
        f"{noun} assigned to you: {title or event.record_id}",
        str(record.get("id", "")),
        entity=event.entity,
        record_id=event.record_id,
    )


def sweep(services: Services) -> None:
    """Dispatch events whose hand-over was lost; re-enqueue deliveries whose retry was lost."""
    now = services.clock()
    with services.writing() as conn:
        stale = conn.execute(
            select(events.c.id)
            .where(events.c.dispatched_at.is_(None), events.c.created_at < now - STALE_AFTER)
            .order_by(events.c.id)
            .limit(SWEEP_BATCH)
        ).scalars()
        stale_ids = list(stale)
        timeout = timedelta(seconds=services.settings.task_visibility_timeout)
        overdue = now - OVERDUE_AFTER - timeout
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
            dispatch_one(services, event_id)
        except Exception:
            # One event that can't be dispatched must not hold up the others behind it.
            log.exception("sweep: event %s could not be dispatched", event_id)
    for delivery_id in lost:
        services.queue.enqueue(DELIVER_TASK, delivery_id)
