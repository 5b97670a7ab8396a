"""The event bus: domain events written to an outbox in the transaction of the change they
describe.

Consumers registered with `consume_in_transaction` (the runtime's dispatcher: webhook
deliveries, notifications) see each event inside that same transaction, so what they record
commits or rolls back with the change, and a write costs no second transaction. An event no
consumer took (none registered, or one failed) is handed to the task queue after commit; one
whose hand-over was lost too (the process died) stays undispatched in the outbox, and the
periodic sweep dispatches it. Consumers therefore see every committed change at least once, and
no rolled-back one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, update

from metacrm.platform.clock import utcnow
from metacrm.platform.db import after_commit, transaction_state
from metacrm.platform.systables import events

DISPATCH_TASK = "events.dispatch"
log = logging.getLogger("metacrm.events")
_PENDING = "pending_events"


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    entity: str | None
    record_id: str | None
    actor: str | None
    payload: dict[str, Any]
    created_at: datetime


# A consumer must leave the transaction usable: it does whatever may fail in a savepoint.
Consumer = Callable[[Connection, Event], None]
_consumers: list[Consumer] = []
# Set by the process that owns a task queue for this engine (see platform.tasks).
Announcer = Callable[[Engine, list[int]], None]
_announcers: list[Announcer] = []


def publish(
    conn: Connection,
    type: str,
    *,
    payload: dict[str, Any],
    entity: str | None = None,
    record_id: str | None = None,
    actor: str | None = None,
) -> int:
    """Record an event in this transaction and hand it to the consumers; returns its id."""
    created = utcnow()
    row = {
        "type": type,
        "entity": entity,
        "record_id": record_id,
        "actor": actor,
        "payload": payload,
        "created_at": created,
        "dispatched_at": created if _consumers else None,
    }
    event_id = int(conn.execute(events.insert(), row).inserted_primary_key[0])
    event = Event(event_id, type, entity, record_id, actor, payload, created)
    if _consumers and _consumed(conn, event):
        return event_id
    state = transaction_state(conn)
    if _PENDING not in state:
        pending: list[int] = []
        state[_PENDING] = pending
        engine = conn.engine
        after_commit(conn, lambda: _announce(engine, pending))
    state[_PENDING].append(event_id)
    return event_id


def consume_in_transaction(consumer: Consumer) -> None:
    """Call `consumer(conn, event)` for every event, inside the publishing transaction."""
    _consumers.append(consumer)


def _consumed(conn: Connection, event: Event) -> bool:
    try:
        for consumer in _consumers:
            consumer(conn, event)
    except Exception:
        # The change itself is sound: let it commit, and the event wait for the dispatch task.
        log.exception("consuming event %s failed; it is left for the dispatch task", event.id)
        conn.execute(update(events).where(events.c.id == event.id).values(dispatched_at=None))
        return False
    return True


def on_publish(announcer: Announcer) -> None:
    """Call `announcer(engine, event_ids)` after each commit that published events."""
    _announcers.append(announcer)


def _announce(engine: Engine, event_ids: list[int]) -> None:
    for announcer in _announcers:
        try:
            announcer(engine, event_ids)
        except Exception:
            # The change is committed: the caller must not see an error for it (the broker may
            # be down). The events stay undispatched, and the sweep hands them over later.
            log.exception("could not hand over events %s; the sweep will", event_ids)
