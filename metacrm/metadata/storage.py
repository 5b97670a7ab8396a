"""How metadata maps onto the database: column types, table and index names.

Text of every kind is stored unbounded; lengths and formats are the record service's business,
so tightening them never needs a table rewrite.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from metacrm.metadata.model import EntityDef, FieldDef

_BY_TYPE: dict[str, TypeEngine] = {
    "text": Text(),
    "textarea": Text(),
    "email": Text(),
    "phone": Text(),
    "url": Text(),
    "picklist": Text(),
    "multipicklist": Text(),
    "autonumber": Text(),
    "lookup": String(26),
    "user": String(26),
    "integer": BigInteger(),
    "boolean": Boolean(),
    "date": Date(),
    "datetime": DateTime(timezone=True),
}
_SYSTEM: dict[str, TypeEngine] = {
    "id": String(26),
    "owner": String(26),
    "created_by": String(26),
    "updated_by": String(26),
    "created_at": DateTime(timezone=True),
    "updated_at": DateTime(timezone=True),
    "deleted_at": DateTime(timezone=True),
    "version": Integer(),
}

MAX_IDENTIFIER = 63


def column_type(field: FieldDef) -> TypeEngine:
    if field.system:
        return _SYSTEM[field.name]
    if field.type == "decimal":
        return Numeric(field.precision, field.scale, asdecimal=True)
    return _BY_TYPE[field.type]


def storage_signature(field: FieldDef) -> tuple[object, ...]:
    """Two fields with the same signature can share a column as it is."""
    if field.type == "decimal":
        return ("decimal", field.precision, field.scale)
    return (type(_BY_TYPE.get(field.type)).__name__,)


def table_name(entity: str) -> str:
    return entity


def _identifier(prefix: str, *parts: str) -> str:
    name = "_".join((prefix, *parts))
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def index_name(entity: str, field: str) -> str:
    return _identifier("ix", entity, field)


def unique_index_name(entity: str, field: str) -> str:
    return _identifier("uq", entity, field)


def auto_indexed(field: FieldDef) -> bool:
    """Lookups and user references are always indexed: they are joined and filtered on."""
    return field.type in ("lookup", "user")


def wants_index(field: FieldDef) -> bool:
    return field.stored and not field.unique and (field.indexed or auto_indexed(field))


def wants_unique(field: FieldDef) -> bool:
    return field.stored and field.unique


def build_table(entity: EntityDef, metadata: MetaData) -> Table:
    """The `Table` for an entity: system columns, active and hidden stored fields, indexes."""
    name = table_name(entity.name)
    columns = [
        Column(f.name, column_type(f), primary_key=f.name == "id", nullable=f.name != "id")
        for f in entity.stored_columns
    ]
    table = Table(name, metadata, *columns)
    system_indexes(name, table)  # an Index attaches itself to its table
    for f in (*entity.fields, *entity.hidden_fields):
        if wants_index(f):
            Index(index_name(name, f.name), table.c[f.name])
        if wants_unique(f):
            Index(
                unique_index_name(name, f.name),
                table.c[f.name],
                unique=True,
                sqlite_where=table.c.deleted_at.is_(None),
                postgresql_where=table.c.deleted_at.is_(None),
            )
    return table


# Indexes every entity table has: by owner, and by recency for the default list orders.
SYSTEM_INDEXES: dict[str, tuple[str, ...]] = {
    "owner": ("owner",),
    "updated_at": ("updated_at", "id"),
    "created_at": ("created_at", "id"),
}


def system_indexes(name: str, table: Table) -> list[Index]:
    return [
        Index(index_name(name, key), *(table.c[c] for c in columns))
        for key, columns in SYSTEM_INDEXES.items()
    ]
