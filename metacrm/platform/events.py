"""The event bus: domain events written to an outbox in the transaction of the change they
describe, and handed to the task queue once that transaction commits.

An event that was committed but never handed over (the process died in between) stays
undispatched in the outbox; the periodic sweep dispatches it. Consumers (webhooks, automations,
notifications) therefore see every committed change at least once, and no rolled-back one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from metacrm.platform.clock import utcnow
from metacrm.platform.db import after_commit, transaction_state
from metacrm.platform.systables import events

DISPATCH_TASK = "events.dispatch"
log = logging.getLogger("metacrm.events")
_PENDING = "pending_events"

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
    """Record an event in this transaction; it is dispatched after commit. Returns its id."""
    event_id = conn.execute(
        events.insert().values(
            type=type,
            entity=entity,
            record_id=record_id,
            actor=actor,
            payload=payload,
            created_at=utcnow(),
        )
    ).inserted_primary_key[0]
    state = transaction_state(conn)
    if _PENDING not in state:
        pending: list[int] = []
        state[_PENDING] = pending
        engine = conn.engine
        after_commit(conn, lambda: _announce(engine, pending))
    state[_PENDING].append(int(event_id))
    return int(event_id)


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
