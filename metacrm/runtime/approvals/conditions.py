"""A process's conditions (entry and step conditions) judged on a record as it is stored now:
the approval acts for the process, so it reads the row whatever the caller's permissions, and
the rule sees the caller as `$user`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from metacrm.metadata.model import EntityDef
from metacrm.metadata.values import from_storage
from metacrm.platform.errors import NotFound
from metacrm.runtime.context import RequestContext
from metacrm.runtime.rules import holds


def stored_record(ctx: RequestContext, entity: EntityDef, record_id: str) -> dict[str, Any]:
    """The record's stored values; NotFound when it is gone (deleted)."""
    table = ctx.catalog.table(entity.name)
    row = ctx.conn.execute(
        select(table).where(table.c.id == record_id, table.c.deleted_at.is_(None))
    ).first()
    if row is None:
        raise NotFound(f"no {entity.name} with id {record_id!r}")
    return {f.name: from_storage(f, row._mapping[f.name]) for f in entity.stored_columns}


def condition_holds(
    ctx: RequestContext,
    entity: EntityDef,
    text: str,
    record: Mapping[str, Any],
    old: Mapping[str, Any] | None = None,
) -> bool:
    context = ctx.rules()
    return holds(context.condition(entity, text), context.env(entity, record, old))
