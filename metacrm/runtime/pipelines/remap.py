"""Moving every record out of a stage a pipeline change removes, set-based: one UPDATE per
removed stage, with the records' history and stage history written alongside, as if each
record had been moved by the admin making the change, and each one's events published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select, update

from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import ENTERED_AT
from metacrm.metadata.values import from_storage, to_json, to_storage
from metacrm.platform.events import publish
from metacrm.platform.systables import record_history
from metacrm.runtime.output import records_json
from metacrm.runtime.pipelines import history

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


@dataclass(frozen=True)
class Mover:
    conn: Connection
    entity: EntityDef
    table: Table
    pipeline: str
    field: str
    user: str | None
    now: datetime
    # Stage key → category, for the `stage.changed` events of the moved records.
    categories: Mapping[str, str]

    def move(self, mapping: Mapping[str, str]) -> None:
        for old, new in mapping.items():
            self._move(old, new)

    def _move(self, old: str, new: str) -> None:
        table, column = self.table, self.table.c[self.field]
        entered = self.entity.field(ENTERED_AT)
        tracks_entry = entered is not None and ENTERED_AT in table.c
        columns = [table.c.id, table.c.version]
        if tracks_entry:
            columns.append(table.c[ENTERED_AT])
        rows = self.conn.execute(
            select(*columns).where(column == old).order_by(table.c.id).with_for_update()
        ).all()
        if not rows:
            return
        values = {
            self.field: new,
            "version": table.c.version + 1,
            "updated_at": self.now,
            "updated_by": self.user,
        }
        if entered is not None and tracks_entry:
            values[ENTERED_AT] = to_storage(entered, self.now)
        self.conn.execute(update(table).where(column == old).values(values))
        audit = []
        for row in rows:
            changes = {self.field: [old, new]}
            if entered is not None and tracks_entry:
                was = from_storage(entered, row._mapping[ENTERED_AT])
                changes[ENTERED_AT] = [to_json(was), to_json(self.now)]
            audit.append(
                {
                    "entity": self.entity.name,
                    "record_id": row.id,
                    "version": row.version + 1,
                    "action": "update",
                    "changed_at": self.now,
                    "changed_by": self.user,
                    "changes": changes,
                }
            )
        self.conn.execute(record_history.insert(), audit)
        ids = [row.id for row in rows]
        history.leave(self.conn, self.entity.name, self.pipeline, ids, self.now, self.user)
        entries = [(record_id, new) for record_id in ids]
        history.enter(self.conn, self.entity.name, self.pipeline, entries, self.now, self.user)
        self._publish(ids, {a["record_id"]: a["changes"] for a in audit}, old, new)

    def _publish(self, ids: list[str], changes: Mapping[str, Any], old: str, new: str) -> None:
        """Each moved record's `record.updated` and `stage.changed`, as if moved one by one."""
        name = self.entity.name
        for start in range(0, len(ids), EVENT_BATCH):
            chunk = ids[start : start + EVENT_BATCH]
            rows = self.conn.execute(select(self.table).where(self.table.c.id.in_(chunk))).all()
            for record in records_json(self.entity, rows):
                record_id = record["id"]
                publish(
                    self.conn,
                    "record.updated",
                    entity=name,
                    record_id=record_id,
                    actor=self.user,
                    payload={
                        "entity": name,
                        "id": record_id,
                        "record": record,
                        "changes": changes[record_id],
                    },
                )
                publish(
                    self.conn,
                    "stage.changed",
                    entity=name,
                    record_id=record_id,
                    actor=self.user,
                    payload={
                        "entity": name,
                        "id": record_id,
                        "pipeline": self.pipeline,
                        "from": old,
                        "to": new,
                        "category": self.categories.get(new),
                    },
                )
