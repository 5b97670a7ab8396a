"""Exporting records: every record the caller may export and read, in id order, a batch at a
time, with fields shown as their permissions allow (hidden ones are not columns at all)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.runtime.output import HIDDEN_IN_OUTPUT
from metacrm.runtime.records import RecordService
from metacrm.runtime.rules import Scope, SqlCompiler, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

BATCH = 1000


def export_records(
    service: RecordService, entity_name: str, filter_text: str | None = None
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The column names and the records. The filter is checked before anything is read."""
    entity = service.ctx.catalog.entity(entity_name)
    service.permissions.require(entity, "export")
    _compiler(service, entity, filter_text)
    view = service.permissions.view(entity, probe=False)
    columns = [f.name for f in view.all_fields if f.name not in HIDDEN_IN_OUTPUT]
    return columns, _records(service, entity, filter_text)


def _compiler(service: RecordService, entity: EntityDef, filter_text: str | None) -> SqlCompiler:
    compiler = service.compiler(entity)
    if filter_text:
        scope = Scope(service.permissions.view(entity, probe=True), service.permissions.find_view)
        compiler.compile(check(parse(filter_text), scope, BOOLEAN))
    return compiler


def _records(
    service: RecordService, entity: EntityDef, filter_text: str | None
) -> Iterator[dict[str, Any]]:
    table = service.ctx.catalog.table(entity.name)
    after: str | None = None
    while True:
        compiler = _compiler(service, entity, filter_text)
        # Exporting needs both rights: what the export scope selects, of what may be read.
        allowed = service.permissions.condition(entity, "export", compiler)
        stmt, reading = service.readable(entity, compiler)
        if allowed is not None:
            stmt = stmt.where(allowed)
        if after is not None:
            stmt = stmt.where(table.c.id > after)
        rows = service.ctx.conn.execute(stmt.order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield from service.output(entity, reading, rows)
        after = rows[-1].id
