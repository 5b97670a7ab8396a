"""The stage history of records: an entry row per visit to a stage, closed when the record
leaves it. Written in the transaction of the move it describes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from metacrm.platform.systables import stage_history

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
