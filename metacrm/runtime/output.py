"""Rows to JSON records, fast: one converter per field, chosen once per entity snapshot.

Listing 500 records must not re-decide for every value how a decimal or a date is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.platform.clock import as_utc
from metacrm.runtime.catalog import Catalog

HIDDEN_IN_OUTPUT = frozenset({"deleted_at"})
Converter = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _decimal(value: Any) -> Any:
    if value is None:
        return None
    return format(value if isinstance(value, Decimal) else Decimal(str(value)), "f")


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, date) else value


def _datetime(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z")


def _list(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _integer(value: Any) -> Any:
    # A formula's integer may come back as a float or a Decimal from SQLite arithmetic.
    return int(value) if isinstance(value, float | Decimal) else value


def _boolean(value: Any) -> Any:
    return bool(value) if isinstance(value, int) else value


_BY_KIND: dict[str, Converter] = {
    "decimal": _decimal,
    "date": _date,
    "datetime": _datetime,
    "list": _list,
    "integer": _integer,
    "boolean": _boolean,
}


def converter(field: FieldDef) -> Converter:
    if field.system:
        return _datetime if field.name.endswith("_at") else _same
    return _BY_KIND.get(field.value_kind, _same)


def output_plan(entity: EntityDef) -> tuple[tuple[str, Converter], ...]:
    """Each output field with its converter."""
    return tuple(
        (f.name, converter(f)) for f in entity.all_fields if f.name not in HIDDEN_IN_OUTPUT
    )


def records_json(
    catalog: Catalog, entity: EntityDef, rows: Sequence[Any], fields: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of one result (all with the same columns) as records, optionally only `fields`."""
    if not rows:
        return []
    position = {name: i for i, name in enumerate(rows[0]._fields)}
    wanted = {"id", *fields} if fields else None
    plan_of_entity = catalog.memo(("output_plan", entity.name), lambda: output_plan(entity))
    plan = [
        (name, position[name], convert)
        for name, convert in plan_of_entity
        if name in position and (wanted is None or name in wanted)
    ]
    return [{name: convert(row[i]) for name, i, convert in plan} for row in rows]
