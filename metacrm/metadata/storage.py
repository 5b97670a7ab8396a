"""How metadata maps onto the database: column types, table and index names.

Text of every kind is stored unbounded; lengths and formats are the record service's business,
so tightening them never needs a table rewrite.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Any

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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from metacrm.metadata.model import FIELD_STORAGE_KEY, STORAGE_KEY, EntityDef, FieldDef

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


# Index and constraint names are made from ids, never from names: "mc_ix_<entity id>_<field id>".
# Names built from entity and field names collide ("acme" + "q_owner" and "acme_q" + "owner" are
# both ix_acme_q_owner), and a hash cut to 63 bytes only makes that unlikely. Here the entity id
# is unique in the database (a counter, never reused), the field id unique within its entity (a
# counter in the entity document, never reused), and the key after the entity id is either a
# field id (digits) or one of the words of SYSTEM_INDEXES, so the name can be read back into
# (kind, entity id, key): two different indexes can't share it. The mc_ prefix is reserved for
# the platform (no entity table may take it) and no platform table or index is named
# mc_ix_/mc_uq_/mc_pk_, so these names can't meet any other relation in the database's one
# namespace either. They stay far below PostgreSQL's 63 bytes, and renaming a field changes
# nothing. Entities stored before ids existed keep the old names until `metacrm init` upgrades
# them (metadata/upgrade.py).

# Indexes every entity table has: by owner, and by recency for the default list orders.
SYSTEM_INDEXES: dict[str, tuple[str, ...]] = {
    "owner": ("owner",),
    "updated_at": ("updated_at", "id"),
    "created_at": ("created_at", "id"),
}


def index_name(entity: EntityDef, field: FieldDef) -> str:
    if entity.storage_id is None:
        return legacy_index_name(entity.name, field.name)
    return f"mc_ix_{entity.storage_id}_{_field_id(entity, field)}"


def unique_index_name(entity: EntityDef, field: FieldDef) -> str:
    if entity.storage_id is None:
        return legacy_unique_index_name(entity.name, field.name)
    return f"mc_uq_{entity.storage_id}_{_field_id(entity, field)}"


def system_index_name(entity: EntityDef, key: str) -> str:
    if entity.storage_id is None:
        return legacy_index_name(entity.name, key)
    return f"mc_ix_{entity.storage_id}_{key}"


def primary_key_name(entity: EntityDef) -> str | None:
    """None: the database's own name (PostgreSQL's <table>_pkey), as tables got before ids."""
    if entity.storage_id is None:
        return None
    return f"mc_pk_{entity.storage_id}"


def _field_id(entity: EntityDef, field: FieldDef) -> int:
    if field.storage_id is None:
        raise ValueError(f"field {field.name!r} of {entity.name!r} has no storage id")
    return field.storage_id


def assign_storage_ids(document: dict[str, Any], entity_id: int) -> dict[str, Any]:
    """The document with ids for the entity and for each of its fields, active then hidden;
    for a new entity, or one stored before ids existed."""
    doc = copy.deepcopy(document)
    fields = [*doc.get("fields", []), *doc.get("hidden_fields", [])]
    for number, field in enumerate(fields, start=1):
        field[FIELD_STORAGE_KEY] = number
    doc[STORAGE_KEY] = {"id": entity_id, "next_field_id": len(fields) + 1}
    return doc


def _legacy_identifier(prefix: str, *parts: str) -> str:
    name = "_".join((prefix, *parts))
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def legacy_index_name(entity: str, key: str) -> str:
    """The name an index had before ids: only for entities not yet upgraded, and to find them."""
    return _legacy_identifier("ix", entity, key)


def legacy_unique_index_name(entity: str, field: str) -> str:
    return _legacy_identifier("uq", entity, field)


def auto_indexed(field: FieldDef) -> bool:
    """Lookups and user references are always indexed: they are joined and filtered on."""
    return field.type in ("lookup", "user")


def wants_index(field: FieldDef) -> bool:
    return field.stored and not field.unique and (field.indexed or auto_indexed(field))


def wants_unique(field: FieldDef) -> bool:
    return field.stored and field.unique


@dataclass(frozen=True)
class IndexSpec:
    """One index an entity's table has: system ones first, then one per indexed or unique
    field (active or hidden; a hidden field keeps its index until it is purged)."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    field: FieldDef | None = None


def index_specs(entity: EntityDef) -> list[IndexSpec]:
    specs = [
        IndexSpec(system_index_name(entity, key), columns)
        for key, columns in SYSTEM_INDEXES.items()
    ]
    for f in (*entity.fields, *entity.hidden_fields):
        if wants_index(f):
            specs.append(IndexSpec(index_name(entity, f), (f.name,), False, f))
        if wants_unique(f):
            specs.append(IndexSpec(unique_index_name(entity, f), (f.name,), True, f))
    return specs


def build_table(entity: EntityDef, metadata: MetaData) -> Table:
    """The `Table` for an entity: system columns, active and hidden stored fields, indexes."""
    name = table_name(entity.name)
    columns = [
        Column(f.name, column_type(f), nullable=f.name != "id") for f in entity.stored_columns
    ]
    table = Table(
        name, metadata, *columns, PrimaryKeyConstraint("id", name=primary_key_name(entity))
    )
    live = table.c.deleted_at.is_(None)
    for spec in index_specs(entity):  # an Index attaches itself to its table
        # Unique ignores the recycle bin: a partial index over live rows.
        partial = {"sqlite_where": live, "postgresql_where": live} if spec.unique else {}
        Index(spec.name, *(table.c[c] for c in spec.columns), unique=spec.unique, **partial)
    return table


# SQLite names the columns of the unique index that refused a write ("UNIQUE constraint failed:
# deal.code"), or the index itself when it is on an expression; PostgreSQL names the index.
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:index '([^']+)'|(.+))")


def violated_unique_field(entity: EntityDef, error: BaseException) -> FieldDef | None:
    """The active field whose unique index refused a write, read from the database's error
    (a SQLAlchemy IntegrityError or the driver's own) by index name or by its columns, never
    by looking for field names in the message. None when no unique field's index refused it
    (the primary key, a NOT NULL, another table)."""
    orig = getattr(error, "orig", None) or error
    unique = [s for s in index_specs(entity) if s.unique and s.field in entity.fields]
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg: the index is named; 23505 is unique_violation
        if getattr(orig, "sqlstate", None) != "23505":
            return None
        return next((s.field for s in unique if s.name == diag.constraint_name), None)
    found = _SQLITE_UNIQUE.fullmatch(str(orig))
    if found is None:
        return None
    if found.group(1) is not None:
        return next((s.field for s in unique if s.name == found.group(1)), None)
    prefix = f"{table_name(entity.name)}."
    qualified = found.group(2).split(", ")
    if not all(c.startswith(prefix) for c in qualified):
        return None
    columns = tuple(c[len(prefix) :] for c in qualified)
    return next((s.field for s in unique if s.columns == columns), None)
