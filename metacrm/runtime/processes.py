"""What happens around every record write besides the write itself: the approval lock, stage
pipelines, auto-submitted approvals, and the domain events published after commit.

The record service calls these at fixed points, so no write path can skip them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam

from metacrm.metadata.model import EntityDef
from metacrm.platform.events import publish
from metacrm.runtime import approvals, pipelines
from metacrm.runtime.output import records_json

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService


def before_change(service: RecordService, entity: EntityDef, record_id: str) -> None:
    """Before an existing record is updated, deleted or restored: a pending approval may lock it
    (423)."""
    approvals.check_lock(service, entity, record_id)


def before_write(
    service: RecordService,
    entity: EntityDef,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> dict[str, Any]:
    """Before a create (`before` None) or an update is written: refuse a stage move that breaks
    its pipeline; returns values the write must also set (stage entry actions)."""
    return pipelines.before_write(service, entity, before, after)


def after_write(
    service: RecordService,
    entity: EntityDef,
    record_id: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    """After the row and its history are written, in the same transaction."""
    publish_record_event(service, entity, record_id, action, changes)
    pipelines.after_write(service, entity, record_id, before, after)
    approvals.after_write(service, entity, record_id, before, after)


def publish_record_event(
    service: RecordService, entity: EntityDef, record_id: str, action: str, changes: dict[str, Any]
) -> None:
    """`record.created`, `record.updated`, `record.deleted` or `record.restored`, carrying the
    record as stored now and what changed (old → new). The record is read back: the database
    has the last word on its values (a decimal's scale, say)."""
    table = service.catalog.table(entity.name)
    by_id = table.info.get("select_by_id")
    if by_id is None:
        # Built once per table (per metadata snapshot): every write runs it.
        by_id = table.info["select_by_id"] = table.select().where(
            table.c.id == bindparam("record_id")
        )
    row = service.conn.execute(by_id, {"record_id": record_id}).one()
    record = records_json(entity, [row])[0]
    publish(
        service.conn,
        f"record.{action}d" if action.endswith("e") else f"record.{action}ed",
        entity=entity.name,
        record_id=record_id,
        actor=service.user.id,
        payload={"entity": entity.name, "id": record_id, "record": record, "changes": changes},
    )
