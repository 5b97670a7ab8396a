"""The event outbox: domain events written in the transaction of the change they describe.

An event row commits or rolls back with its change, so a rolled-back change publishes nothing
and a committed one is never lost. Who consumes events, and when, is the runtime's business
(runtime/events.py): normally inside the publishing transaction, and otherwise by the dispatch
task, which claims an undispatched event by stamping `dispatched_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from metacrm.platform.clock import utcnow
from metacrm.platform.systables import events

DISPATCH_TASK = "events.dispatch"


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    entity: str | None
    record_id: str | None
    actor: str | None
    payload: dict[str, Any]
    created_at: datetime


def write_event(
    conn: Connection,
    type: str,
    *,
    payload: dict[str, Any],
    entity: str | None = None,
    record_id: str | None = None,
    actor: str | None = None,
    dispatched: bool = False,
) -> Event:
    """Write one event to the outbox in this transaction; `dispatched` when the caller is
    about to hand it to its consumers itself."""
    created = utcnow()
    row = {
        "type": type,
        "entity": entity,
        "record_id": record_id,
        "actor": actor,
        "payload": payload,
        "created_at": created,
        "dispatched_at": created if dispatched else None,
    }
    event_id = int(conn.execute(events.insert(), row).inserted_primary_key[0])
    return Event(event_id, type, entity, record_id, actor, payload, created)


def mark_undispatched(conn: Connection, event_id: int) -> None:
    """Leave the event for the dispatch task (its consumers failed in the transaction)."""
    conn.execute(update(events).where(events.c.id == event_id).values(dispatched_at=None))
