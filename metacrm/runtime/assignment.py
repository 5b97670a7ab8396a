"""Applying assignment rules: the write hook that gives a new record to the next user of the
first queue whose condition holds for it, and the turn each queue keeps.

A queue's turn is a row of `mc_assignment_turns`, locked while the next user is picked (row
lock on PostgreSQL; SQLite runs one writer at a time), so two writes at once never take the same
turn. The value is returned to the record service, which writes it with the record: history and
the `record.created` event show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from metacrm.metadata.assignment_rules import (
    ASSIGNMENT_RULE,
    CREATE_OR_UNASSIGNED,
    LEAST_LOADED,
    AssignmentRuleDef,
    Queue,
)
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import MetacrmError
from metacrm.platform.systables import assignment_turns, user_roles, users
from metacrm.platform.users import ADMIN_ROLE
from metacrm.runtime.context import Draft, NoHook, Records, RequestContext
from metacrm.runtime.rules import Env, compile_filter, holds


class AssignmentHook(NoHook):
    """Sets the field of each active assignment rule of the entity that is due on this write."""

    def before_write(
        self,
        records: Records,
        entity: EntityDef,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> dict[str, Any]:
        return assign(records.ctx, entity, before, after)


def assign(
    ctx: RequestContext,
    entity: EntityDef,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> dict[str, Any]:
    """The values the entity's assignment rules set on this write (none when no rule is due, or
    no queue has anyone to give the record to)."""
    values: dict[str, Any] = {}
    for rule in ctx.catalog.of_kind_for(ASSIGNMENT_RULE, entity.name):
        if rule.active and due(rule, before, after):
            chosen = pick(ctx, entity, rule, {**after, **values}, before)
            if chosen is not None:
                values[rule.field] = chosen
    return values


def due(
    rule: AssignmentRuleDef, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> bool:
    """On a create, unless the client sent a value for the field (a value sent is kept: a
    record created for someone stays theirs). With `create_or_unassigned`, also on an update
    that leaves the field empty."""
    empty = _blank(after.get(rule.field))
    if before is None:
        sent = after.sent if isinstance(after, Draft) else frozenset()
        return rule.field not in sent or empty
    return rule.when == CREATE_OR_UNASSIGNED and empty


def pick(
    ctx: RequestContext,
    entity: EntityDef,
    rule: AssignmentRuleDef,
    record: Mapping[str, Any],
    old: Mapping[str, Any] | None = None,
) -> str | None:
    """The user the first queue that holds and has anyone active gives the record to, taking
    its turn; None when none does (the field keeps what the write gave it)."""
    rules = ctx.rules()
    env = rules.env(entity, record, old)
    for queue in rule.queues:
        if queue.condition and not _holds(ctx, entity, queue.condition, env):
            continue
        candidates = active_members(ctx.conn, queue)
        if candidates:
            return _take_turn(ctx, entity, rule, queue, candidates)
    return None


def _holds(ctx: RequestContext, entity: EntityDef, condition: str, env: Env) -> bool:
    rules = ctx.rules()
    try:
        return holds(rules.condition(entity, condition), env)
    except MetacrmError:
        # The entity changed under the rule since it was saved (a field it reads is gone): the
        # rule no longer selects anything, rather than refusing every write of the entity.
        return False


def active_members(conn: Connection, queue: Queue) -> list[str]:
    """The queue's active users in its stable order: a list of users in the order given, a
    role's holders by id (ids are time-ordered: oldest account first)."""
    active = users.c.is_active.is_(True)
    if queue.users:
        stmt = select(users.c.id).where(users.c.id.in_(queue.users), active)
        found = set(conn.execute(stmt).scalars())
        return [u for u in queue.users if u in found]
    if queue.role == ADMIN_ROLE:
        stmt = select(users.c.id).where(users.c.is_admin.is_(True), active)
    else:
        stmt = (
            select(users.c.id)
            .join(user_roles, user_roles.c.user_id == users.c.id)
            .where(user_roles.c.role == queue.role, active)
        )
    return list(conn.execute(stmt.order_by(users.c.id)).scalars())


def next_position(candidates: Sequence[str], last: str | None, position: int) -> int:
    """Where the queue goes on: after the user it gave the last record to; if they left the
    queue, the one who took their place; from the start for a new queue."""
    if last in candidates:
        return (candidates.index(last) + 1) % len(candidates)
    return position % len(candidates) if last is not None else 0


def _take_turn(
    ctx: RequestContext,
    entity: EntityDef,
    rule: AssignmentRuleDef,
    queue: Queue,
    candidates: list[str],
) -> str:
    last, position = _locked_turn(ctx.conn, rule.name, queue.key)
    start = next_position(candidates, last, position)
    chosen = candidates[start]
    if queue.method == LEAST_LOADED:
        # The turn lock is held, so another write's assignment is committed (and counted) or
        # waits for this one: two writes can't both see the same user as least loaded.
        loads = open_counts(ctx, entity, rule.field, queue.open_condition, candidates)
        in_turn = [*candidates[start:], *candidates[:start]]
        chosen = min(in_turn, key=lambda user: loads.get(user, 0))
    key = _turn_key(rule.name, queue.key)
    ctx.conn.execute(
        update(assignment_turns)
        .where(*key)
        .values(
            last_user_id=chosen,
            position=candidates.index(chosen),
            assigned=assignment_turns.c.assigned + 1,
            updated_at=ctx.now,
        )
    )
    return chosen


def _turn_key(rule: str, queue: str) -> tuple[Any, ...]:
    return (assignment_turns.c.rule == rule, assignment_turns.c.queue == queue)


def _locked_turn(conn: Connection, rule: str, queue: str) -> tuple[str | None, int]:
    """The queue's last user and position, its row locked until the transaction ends (made on
    first use: two first uses at once make it once, the second waits for the first)."""
    locked = (
        select(assignment_turns.c.last_user_id, assignment_turns.c.position)
        .where(*_turn_key(rule, queue))
        .with_for_update()
    )
    row = conn.execute(locked).first()
    if row is None:
        insert = postgres_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            insert(assignment_turns)
            .values(rule=rule, queue=queue, position=0, assigned=0)
            .on_conflict_do_nothing()
        )
        row = conn.execute(locked).one()
    return row.last_user_id, row.position


def open_counts(
    ctx: RequestContext,
    entity: EntityDef,
    field: str,
    open_condition: str | None,
    candidates: Sequence[str],
) -> dict[str, int]:
    """How many records (not deleted, matching `open_condition`) each candidate holds in
    `field`, counted over all records whatever the writer may read: the queue's business."""
    catalog = ctx.catalog
    table = catalog.table(entity.name)
    column = table.c[field]
    stmt = (
        select(column, func.count())
        .where(column.in_(candidates), table.c.deleted_at.is_(None))
        .group_by(column)
    )
    if open_condition:
        try:
            _, compiler = compile_filter(
                open_condition,
                entity,
                table,
                catalog.table,
                catalog.find,
                ctx.user_values(),
                ctx.now,
            )
        except MetacrmError:
            # A field it read is gone: every record counts, and assignment goes on.
            return open_counts(ctx, entity, field, None, candidates)
        stmt = compiler.apply(stmt)
    return {user: count for user, count in ctx.conn.execute(stmt)}


def _blank(value: Any) -> bool:
    return value is None or value == ""
