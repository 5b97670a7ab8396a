"""Counts and sums over the records a caller may read, grouped by a field: a kanban board's
column headers, the home page's "my open items by stage". The permission condition and the
caller's filter are the list's own (`RecordService.readable`), so a total never counts a record
the list would not show."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from metacrm.runtime.records import RecordService
from metacrm.runtime.rules import BOOLEAN, Scope, check, parse


@dataclass(frozen=True)
class Group:
    value: Any
    count: int
    total: Decimal | None


def grouped(
    records: RecordService,
    entity_name: str,
    by: str,
    *,
    total_of: str | None = None,
    filter: str | None = None,
    q: str | None = None,
) -> dict[Any, Group]:
    """For each value of `by` among the caller's readable records (matching `filter`, a rule
    expression, and the search `q`): how many, and the sum of `total_of`."""
    from metacrm.runtime import listing

    ctx = records.ctx
    entity = ctx.catalog.entity(entity_name)
    probe = records.permissions.view(entity, probe=True)
    listing.check_names(probe, [by, *([total_of] if total_of else [])], "group")
    compiler = records.compiler(entity)
    if filter:
        compiler.compile(check(parse(filter), Scope(probe, records.permissions.find_view), BOOLEAN))
    stmt, _ = records.readable(entity, compiler)
    if q:
        stmt = stmt.where(listing.search(probe, ctx.catalog.table(entity.name), q))
    rows = stmt.order_by(None).subquery()
    key = rows.c[by]
    measures = [func.count().label("n")]
    if total_of:
        measures.append(func.sum(rows.c[total_of]).label("total"))
    query = select(key.label("value"), *measures).group_by(key)
    found = {}
    for row in ctx.conn.execute(query):
        total = row.total if total_of else None
        if total is not None and not isinstance(total, Decimal):
            total = Decimal(str(total))
        found[row.value] = Group(row.value, row.n, total)
    return found
