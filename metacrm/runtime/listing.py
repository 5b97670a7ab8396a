"""Listing records: filter, search, sort with an `id` tie-break, keyset pagination, count.

Pages are cut by the sort keys of the last row (not OFFSET), so they stay stable while records
change. Nulls sort as the smallest values, in both databases.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, select, true

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_json
from metacrm.platform.errors import BadRequest
from metacrm.runtime.cursor import decode_cursor, encode_cursor
from metacrm.runtime.rules import Scope, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
UNSORTABLE = frozenset({"multipicklist"})


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False

    def spec(self) -> str:
        return ("-" if self.descending else "") + self.field


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    sort: tuple[SortKey, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    fields: tuple[str, ...] | None = None
    expand: tuple[str, ...] = ()
    q: str | None = None
    count: bool = False


def check_names(entity: EntityDef, names: Sequence[str], what: str) -> None:
    for name in names:
        f = entity.field(name)
        if f is None or f.name == "deleted_at":
            close = difflib.get_close_matches(name, list(entity.field_map), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise BadRequest(f"unknown {what} field {name!r} for {entity.name}{hint}")


def list_records(service: RecordService, entity: EntityDef, query: ListQuery) -> dict[str, Any]:
    table = service.catalog.table(entity.name)
    permissions = service.permissions
    # Names are checked against the entity as the caller may see it: a field withheld from them
    # is unknown, exactly like a field that doesn't exist.
    probe = permissions.view(entity, probe=True)
    check_names(probe, [k.field for k in query.sort], "sort")
    for key in query.sort:
        if entity.field_map[key.field].type in UNSORTABLE:
            raise BadRequest(f"can't sort by {key.field}: a {entity.field_map[key.field].type}")
    if query.fields:
        check_names(permissions.view(entity, probe=False), query.fields, "fields")
    keys = (*query.sort, SortKey("id"))
    compiler = service.compiler(entity)
    if query.filter:
        compiler.compile(check(parse(query.filter), Scope(probe, permissions.find_view), BOOLEAN))
    columns = {k.field: compiler.column_for((k.field,)) for k in keys}
    stmt, reading = service.readable(entity, compiler)
    if query.q:
        stmt = stmt.where(_search(probe, table, query.q))
    total = None
    if query.count:
        total = service.conn.execute(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        ).scalar_one()
    spec = ",".join(k.spec() for k in keys)
    if query.cursor:
        payload = decode_cursor(service.secret, query.cursor)
        if (
            payload.get("e") != entity.name
            or payload.get("s") != spec
            or not isinstance(payload.get("v"), list)
        ):
            raise BadRequest("the cursor belongs to another list (entity or sort); start again")
        stmt = stmt.where(_after(entity, columns, keys, payload["v"]))
    postgres = service.conn.dialect.name == "postgresql"
    stmt = stmt.order_by(*(_order(columns[k.field], k.descending, postgres) for k in keys))
    rows = service.conn.execute(stmt.limit(query.limit + 1)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    data = service.output(entity, reading, rows, query.fields)
    if query.expand:
        service.expand(entity, data, query.expand)
    next_cursor = None
    if more and rows:
        last = rows[-1]._mapping
        values = [to_json(from_storage(_stored(entity, k.field), last[k.field])) for k in keys]
        next_cursor = encode_cursor(service.secret, {"e": entity.name, "s": spec, "v": values})
    result: dict[str, Any] = {"data": data, "next_cursor": next_cursor}
    if total is not None:
        result["count"] = total
    return result


def _order(column: Any, descending: bool, postgres: bool) -> Any:
    # SQLite puts nulls first ascending and last descending; PostgreSQL needs telling.
    if descending:
        return column.desc().nulls_last() if postgres else column.desc()
    return column.asc().nulls_first() if postgres else column.asc()


def _after(
    entity: EntityDef, columns: dict[str, Any], keys: Sequence[SortKey], raw_values: list[Any]
) -> ColumnElement[bool]:
    """Rows that come after the cursor's row in the sort order (nulls are smallest)."""
    if len(raw_values) != len(keys):
        raise BadRequest("the cursor is not valid; start again without one")
    values = [
        _cursor_value(_stored(entity, k.field), v) for k, v in zip(keys, raw_values, strict=True)
    ]
    clauses = []
    for i, key in enumerate(keys):
        ties = [_equal(columns[keys[j].field], values[j]) for j in range(i)]
        clauses.append(and_(*ties, _beyond(columns[key.field], key.descending, values[i])))
    return or_(*clauses)


def _equal(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _beyond(column: Any, descending: bool, value: Any) -> ColumnElement[bool]:
    if value is None:
        return false() if descending else column.is_not(None)
    return or_(column < value, column.is_(None)) if descending else column > value


def _stored(entity: EntityDef, name: str) -> FieldDef:
    """How a sort key's value is read: formulas as their result type."""
    field = entity.field_map[name]
    if field.type == "formula":
        return FieldDef.from_doc({"name": name, "type": field.doc.get("result_type", "text")})
    return field


def _cursor_value(field: FieldDef, raw: Any) -> Any:
    if raw is None:
        return None
    if field.system and field.name in ("created_at", "updated_at"):
        field = FieldDef.from_doc({"name": field.name, "type": "datetime"})
    elif field.system:
        field = FieldDef.from_doc(
            {
                "name": field.name,
                "type": "integer" if field.name == "version" else "text",
                "max_length": 100,
            }
        )
    try:
        return coerce(field, raw)
    except ValueProblem:
        raise BadRequest("the cursor is not valid; start again without one") from None


def _search(entity: EntityDef, table: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive substring search over the searchable text fields."""
    searchable = [f for f in entity.fields if f.searchable]
    if not searchable or not text.strip():
        return true() if not text.strip() else false()
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = literal(f"%{escaped}%")
    return or_(*(func.lower(table.c[f.name]).like(pattern, escape="\\") for f in searchable))
