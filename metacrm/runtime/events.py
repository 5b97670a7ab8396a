"""Publishing domain events from a unit of work: each event goes to the outbox in the context's
transaction and to the registered consumers (webhook deliveries, notifications) right there, so
what they record commits or rolls back with the change and a write costs no second transaction.

An event no consumer took (none registered, or one failed) is handed to the task queue after
commit; one whose hand-over was lost too (the process died) stays undispatched in the outbox,
and the periodic sweep dispatches it. Consumers therefore see every committed change at least
once, and no rolled-back one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from metacrm.platform.db import after_commit, transaction_state
from metacrm.platform.events import DISPATCH_TASK, Event, mark_undispatched, write_event
from metacrm.runtime.context import EventConsumer, Host, RequestContext

log = logging.getLogger("metacrm.events")
_PENDING = "pending_events"


def publish(
    ctx: RequestContext,
    type: str,
    *,
    payload: dict[str, Any],
    entity: str | None = None,
    record_id: str | None = None,
    actor: str | None = None,
) -> int:
    """Record an event in this transaction and hand it to the consumers; returns its id.
    `actor` defaults to the context's user."""
    consumers = ctx.host.registry.event_consumers
    event = write_event(
        ctx.conn,
        type,
        payload=payload,
        entity=entity,
        record_id=record_id,
        actor=ctx.user.id if actor is None else actor,
        dispatched=bool(consumers),
    )
    if consumers and consume(ctx, consumers, event):
        return event.id
    state = transaction_state(ctx.conn)
    if _PENDING not in state:
        pending: list[int] = []
        state[_PENDING] = pending
        host = ctx.host
        after_commit(ctx.conn, lambda: _hand_over(host, pending))
    state[_PENDING].append(event.id)
    return event.id


def consume(ctx: RequestContext, consumers: Sequence[EventConsumer], event: Event) -> bool:
    """Run every consumer; when one fails, none of their work stays and the event is left
    undispatched (False), for the dispatch task to run them all again.

    Each consumer leaves the transaction usable whatever happens (what may fail, it does in a
    savepoint of its own). With several, a savepoint around them all also undoes the work of
    those that ran before one failed; a lone consumer needs none (every write pays for it)."""
    try:
        if len(consumers) == 1:
            consumers[0](ctx, event)
        else:
            with ctx.conn.begin_nested():
                for consumer in consumers:
                    consumer(ctx, event)
    except Exception:
        # The change itself is sound: let it commit, and the event wait for the dispatch task.
        log.exception("consuming event %s failed; it is left for the dispatch task", event.id)
        mark_undispatched(ctx.conn, event.id)
        return False
    return True


def _hand_over(host: Host, event_ids: list[int]) -> None:
    try:
        host.queue.enqueue(DISPATCH_TASK, event_ids)
    except Exception:
        # The change is committed: the caller must not see an error for it (the broker may be
        # down). The events stay undispatched, and the sweep hands them over later.
        log.exception("could not hand over events %s; the sweep will", event_ids)
