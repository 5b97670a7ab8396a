"""Index and key names made from storage ids: within PostgreSQL's limit, apart from every name
the platform's own tables use, and read back from a database's unique-conflict error."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import pytest

from metacrm.metadata.model import EntityDef
from metacrm.metadata.storage import (
    SYSTEM_INDEXES,
    assign_storage_ids,
    index_name,
    index_specs,
    primary_key_name,
    system_index_name,
    unique_index_name,
    violated_unique_field,
)
from metacrm.platform.systables import system_metadata

ID_BASED = re.compile(r"^mc_(ix|uq|pk)_[0-9]+(_|$)")
BIGGEST = 2**63 - 1  # a BigInteger counter can go no higher


def deal(entity_id: int = 7) -> EntityDef:
    document = {
        "name": "deal",
        "fields": [
            {"name": "code", "type": "text", "unique": True},
            {"name": "zip_code", "type": "text", "unique": True},
            {"name": "stage", "type": "text", "indexed": True},
            {"name": "boss", "type": "user"},
        ],
        "hidden_fields": [{"name": "old", "type": "text", "unique": True}],
    }
    return EntityDef.from_doc(assign_storage_ids(document, entity_id))


def test_names_stay_within_63_bytes_for_the_largest_ids() -> None:
    entity = deal(BIGGEST)
    doc = {**entity.doc, "storage": {"id": BIGGEST, "next_field_id": BIGGEST}}
    doc["fields"][0]["storage_id"] = BIGGEST
    biggest = EntityDef.from_doc(doc)
    names = [s.name for s in index_specs(biggest)] + [primary_key_name(biggest) or ""]
    assert max(len(n.encode()) for n in names) <= 63


def test_names_of_one_entity_are_distinct_and_read_back_to_their_kind_and_key() -> None:
    entity = deal()
    names = [s.name for s in index_specs(entity)]
    assert len(names) == len(set(names))
    assert [system_index_name(entity, key) for key in SYSTEM_INDEXES] == [
        "mc_ix_7_owner",
        "mc_ix_7_updated_at",
        "mc_ix_7_created_at",
    ]
    code, zip_code, stage, boss = entity.fields
    assert unique_index_name(entity, code) == "mc_uq_7_1"
    assert unique_index_name(entity, zip_code) == "mc_uq_7_2"
    assert index_name(entity, stage) == "mc_ix_7_3"
    assert index_name(entity, boss) == "mc_ix_7_4"
    assert unique_index_name(entity, entity.hidden_fields[0]) == "mc_uq_7_5"
    assert primary_key_name(entity) == "mc_pk_7"


def test_no_platform_table_index_or_key_takes_an_id_based_name() -> None:
    names = []
    for table in system_metadata.tables.values():
        names.append(table.name)
        names.append(f"{table.name}_pkey")  # PostgreSQL's name for an unnamed primary key
        names.extend(str(ix.name) for ix in table.indexes)
        names.extend(str(c.name) for c in table.constraints if c.name)
    assert names
    assert [n for n in names if ID_BASED.match(n)] == []


@dataclass
class Diag:
    constraint_name: str | None


class PostgresError(Exception):
    """What psycopg raises: the SQLSTATE and the constraint's name apart from the message."""

    def __init__(self, sqlstate: str, constraint: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate, self.diag = sqlstate, Diag(constraint)


class Wrapped(Exception):
    """SQLAlchemy's IntegrityError keeps the driver's error as `orig`."""

    def __init__(self, orig: Exception) -> None:
        super().__init__(str(orig))
        self.orig = orig


@pytest.mark.parametrize(
    ("error", "field"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed: deal.zip_code"), "zip_code"),
        (sqlite3.IntegrityError("UNIQUE constraint failed: deal.code"), "code"),
        (sqlite3.IntegrityError("UNIQUE constraint failed: index 'mc_uq_7_2'"), "zip_code"),
        (sqlite3.IntegrityError("UNIQUE constraint failed: deal.id"), None),
        (sqlite3.IntegrityError("UNIQUE constraint failed: deal.old"), None),
        (sqlite3.IntegrityError("UNIQUE constraint failed: other.code"), None),
        (sqlite3.IntegrityError("UNIQUE constraint failed: deal.code, deal.zip_code"), None),
        (sqlite3.IntegrityError("NOT NULL constraint failed: deal.code"), None),
        (PostgresError("23505", "mc_uq_7_2", 'duplicate key … "mc_uq_7_2" (code)'), "zip_code"),
        (PostgresError("23505", "mc_uq_7_1", "Key (zip_code)=(x)"), "code"),
        (PostgresError("23505", "mc_pk_7", "Key (id)=(x) code"), None),
        (PostgresError("23505", "mc_uq_7_5", "old"), None),
        (PostgresError("23502", None, 'null value in column "code"'), None),
    ],
)
def test_a_unique_conflict_is_read_back_to_its_field(error: Exception, field: str | None) -> None:
    entity = deal()
    for raised in (error, Wrapped(error)):
        found: Any = violated_unique_field(entity, raised)
        assert (found.name if found else None) == field
