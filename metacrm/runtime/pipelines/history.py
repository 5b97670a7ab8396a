"""The stage history of records: an entry row per visit to a stage, closed when the record
leaves it. Written in the transaction of the move it describes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, update

from metacrm.platform.systables import record_history, stage_history

# Ids per statement when closing many visits at once (SQLite bounds bound parameters).
_CHUNK = 500


def enter(
    conn: Connection,
    entity: str,
    pipeline: str,
    entries: Sequence[tuple[str, str]],
    when: datetime,
    user: str | None,
) -> None:
    """Open a visit for each (record id, stage)."""
    if entries:
        conn.execute(
            stage_history.insert(),
            [
                {
                    "entity": entity,
                    "record_id": record_id,
                    "pipeline": pipeline,
                    "stage": stage,
                    "entered_at": when,
                    "entered_by": user,
                }
                for record_id, stage in entries
            ],
        )


def leave(
    conn: Connection,
    entity: str,
    pipeline: str,
    record_ids: Sequence[str],
    when: datetime,
    user: str | None,
) -> None:
    """Close the open visit of each record (a record that predates the pipeline has none)."""
    for first in range(0, len(record_ids), _CHUNK):
        conn.execute(
            update(stage_history)
            .where(
                stage_history.c.entity == entity,
                stage_history.c.pipeline == pipeline,
                stage_history.c.record_id.in_(record_ids[first : first + _CHUNK]),
                stage_history.c.exited_at.is_(None),
            )
            .values(exited_at=when, exited_by=user)
        )


@dataclass(frozen=True)
class Entry:
    """When a record entered the stage it is in, and who moved it there."""

    record_id: str
    stage: str
    entered_at: datetime
    entered_by: str | None


def entries_before(
    conn: Connection, entity: str, table: Table, field: str, pipeline: str
) -> list[Entry]:
    """For the records the pipeline finds already in a stage and with no open visit: when they
    entered it — the last change of the field in their history, else their creation — so a
    pipeline put on live data starts with true `stage_entered_at` values and timelines."""
    column = table.c[field]
    rows = conn.execute(
        select(table.c.id, column, table.c.created_at, table.c.created_by)
        .where(column.is_not(None))
        .order_by(table.c.id)
    ).all()
    entries = []
    for first in range(0, len(rows), _CHUNK):
        chunk = rows[first : first + _CHUNK]
        ids = [r.id for r in chunk]
        visiting = set(
            conn.execute(
                select(stage_history.c.record_id).where(
                    stage_history.c.entity == entity,
                    stage_history.c.pipeline == pipeline,
                    stage_history.c.record_id.in_(ids),
                    stage_history.c.exited_at.is_(None),
                )
            ).scalars()
        )
        last_change: dict[str, tuple[datetime, str | None]] = {}
        changes = conn.execute(
            select(
                record_history.c.record_id,
                record_history.c.changed_at,
                record_history.c.changed_by,
                record_history.c.changes,
            )
            .where(record_history.c.entity == entity, record_history.c.record_id.in_(ids))
            .order_by(record_history.c.id)
        )
        for record_id, changed_at, changed_by, changed in changes:
            if isinstance(changed, dict) and field in changed:
                last_change[record_id] = (changed_at, changed_by)
        for row in chunk:
            if row.id in visiting:
                continue
            at, by = last_change.get(row.id, (row.created_at, row.created_by))
            entries.append(Entry(row.id, row._mapping[field], at, by))
    return entries


def enter_as_found(conn: Connection, entity: str, pipeline: str, found: Sequence[Entry]) -> None:
    """Open the visits `entries_before` found, each at its own time and by its own mover."""
    if found:
        conn.execute(
            stage_history.insert(),
            [
                {
                    "entity": entity,
                    "record_id": e.record_id,
                    "pipeline": pipeline,
                    "stage": e.stage,
                    "entered_at": e.entered_at,
                    "entered_by": e.entered_by,
                }
                for e in found
            ],
        )


def visits(conn: Connection, entity: str, pipeline: str, record_id: str) -> list[Any]:
    """Every visit of one record, oldest first."""
    return list(
        conn.execute(
            select(stage_history)
            .where(
                stage_history.c.entity == entity,
                stage_history.c.record_id == record_id,
                stage_history.c.pipeline == pipeline,
            )
            .order_by(stage_history.c.id)
        )
    )
