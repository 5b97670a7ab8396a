"""Finding the records a pipeline change strands: those whose stage the new stages don't have.
The designer moves them through the record service (design.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Table, func, select

# How many ids an error message shows.
SAMPLE_IDS = 5
# Moved records read back per query to publish their events.
EVENT_BATCH = 500


@dataclass(frozen=True)
class Stranded:
    """Records (live and in the recycle bin) whose stage is not among the pipeline's stages."""

    stage: str
    count: int
    sample: tuple[str, ...]


def stranded(conn: Connection, table: Table, field: str, keys: set[str]) -> list[Stranded]:
    column = table.c[field]
    counts = conn.execute(
        select(column, func.count())
        .where(column.is_not(None), column.not_in(keys))
        .group_by(column)
        .order_by(column)
    ).all()
    found = []
    for stage, count in counts:
        ids = conn.execute(
            select(table.c.id).where(column == stage).order_by(table.c.id).limit(SAMPLE_IDS)
        )
        found.append(Stranded(stage, count, tuple(ids.scalars())))
    return found


def stranded_ids(
    conn: Connection, table: Table, field: str, keys: set[str]
) -> list[tuple[str, str]]:
    """(id, stage) of every record, live or in the recycle bin, outside the stages `keys`."""
    column = table.c[field]
    rows = conn.execute(
        select(table.c.id, column)
        .where(column.is_not(None), column.not_in(keys))
        .order_by(table.c.id)
    )
    return [(row[0], row[1]) for row in rows]
