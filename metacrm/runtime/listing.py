"""The pieces of a record list, composed by the record service's read path: checked sort keys
with an `id` tie-break, search, count, ordering and keyset pagination.

Pages are cut by the sort keys of the last row (not OFFSET), so they stay stable while records
change. Nulls sort as the smallest values, in both databases.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select, true

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_json
from metacrm.platform.errors import BadRequest
from metacrm.runtime.cursor import decode_cursor, encode_cursor

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


def sort_keys(entity: EntityDef, sort: Sequence[SortKey]) -> tuple[SortKey, ...]:
    """The list's sort keys, checked against the entity as the caller sees it, with `id` last
    (the tie-break that makes the order total)."""
    check_names(entity, [k.field for k in sort], "sort")
    for key in sort:
        kind = entity.field_map[key.field].type
        if kind in UNSORTABLE:
            raise BadRequest(f"can't sort by {key.field}: a {kind}")
    return (*sort, SortKey("id"))


def counting(stmt: Select[Any]) -> Select[Any]:
    """How many rows the (unordered, unlimited) list statement selects."""
    return select(func.count()).select_from(stmt.order_by(None).subquery())


def spec_of(keys: Sequence[SortKey]) -> str:
    return ",".join(k.spec() for k in keys)


def cursor_values(
    secret: str, cursor: str, entity: EntityDef, keys: Sequence[SortKey]
) -> list[Any]:
    """The sort-key values of the row a cursor continues after, coerced for comparison."""
    payload = decode_cursor(secret, cursor)
    if (
        payload.get("e") != entity.name
        or payload.get("s") != spec_of(keys)
        or not isinstance(payload.get("v"), list)
    ):
        raise BadRequest("the cursor belongs to another list (entity or sort); start again")
    raw_values = payload["v"]
    if len(raw_values) != len(keys):
        raise BadRequest("the cursor is not valid; start again without one")
    return [
        _cursor_value(_stored(entity, k.field), v) for k, v in zip(keys, raw_values, strict=True)
    ]


def next_cursor(secret: str, entity: EntityDef, keys: Sequence[SortKey], last: Any) -> str:
    """The cursor of the page after the one ending with row `last`."""
    row = last._mapping
    values = [to_json(from_storage(_stored(entity, k.field), row[k.field])) for k in keys]
    return encode_cursor(secret, {"e": entity.name, "s": spec_of(keys), "v": values})


def ordering(columns: dict[str, Any], keys: Sequence[SortKey], postgres: bool) -> list[Any]:
    return [_order(columns[k.field], k.descending, postgres) for k in keys]


def _order(column: Any, descending: bool, postgres: bool) -> Any:
    # SQLite puts nulls first ascending and last descending; PostgreSQL needs telling.
    if descending:
        return column.desc().nulls_last() if postgres else column.desc()
    return column.asc().nulls_first() if postgres else column.asc()


def after(
    columns: dict[str, Any], keys: Sequence[SortKey], values: Sequence[Any]
) -> ColumnElement[bool]:
    """Rows that come after the cursor's row in the sort order (nulls are smallest)."""
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


def search(entity: EntityDef, table: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive substring search over the searchable text fields."""
    searchable = [f for f in entity.fields if f.searchable]
    if not searchable or not text.strip():
        return true() if not text.strip() else false()
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = literal(f"%{escaped}%")
    return or_(*(func.lower(table.c[f.name]).like(pattern, escape="\\") for f in searchable))
