"""Bringing entities made by an earlier metacrm up to date: each gets its storage ids, and its
table's indexes and primary key take the names made from them. `metacrm init` runs it; idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Connection, inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement

from metacrm.metadata import store
from metacrm.metadata.model import STORAGE_KEY, EntityDef
from metacrm.metadata.storage import (
    IndexSpec,
    assign_storage_ids,
    index_specs,
    primary_key_name,
    table_name,
)


@dataclass
class UpgradeReport:
    entities: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    # Indexes the metadata wants but the table did not have under their old name: left alone
    # (creating a unique one could fail on existing data); an admin can re-save the field.
    missing: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.entities:
            out.append(
                f"upgraded {len(self.entities)} entities to id-based index names "
                f"({len(self.renamed)} indexes and keys renamed)"
            )
        out.extend(f"warning: index {name} is missing" for name in self.missing)
        return out


def upgrade_entities(conn: Connection) -> UpgradeReport:
    """Give every entity stored without storage ids its ids, and rename its indexes (and, on
    PostgreSQL, its primary key) from the old name-based names to the id-based ones, in the
    caller's transaction. Entities that already have ids are left as they are."""
    report = UpgradeReport()
    ops = Operations(MigrationContext.configure(conn))
    for stored in store.load_all(conn, store.ENTITY):
        if STORAGE_KEY in stored.document:
            continue
        old = EntityDef.from_doc(stored.document)
        document = assign_storage_ids(stored.document, store.next_entity_storage_id(conn))
        _rename(conn, ops, old, EntityDef.from_doc(document), report)
        # In place: the ids are the platform's, so admins see no new version of the entity.
        store.replace_current(conn, store.ENTITY, stored.name, document)
        report.entities.append(stored.name)
    return report


def _rename(
    conn: Connection, ops: Operations, old: EntityDef, new: EntityDef, report: UpgradeReport
) -> None:
    table = table_name(new.name)
    inspector = inspect(conn)
    present = {ix["name"] for ix in inspector.get_indexes(table)}
    # Same fields in the same order: the specs pair up one to one, old name beside new.
    for before, after in zip(index_specs(old), index_specs(new), strict=True):
        if after.name in present:
            continue
        if before.name not in present:
            report.missing.append(after.name)
            continue
        _rename_index(conn, ops, table, before, after)
        report.renamed.append((before.name, after.name))
    # PostgreSQL names a primary key <table>_pkey, a relation name an entity called
    # "<table>_pkey" would need. SQLite keeps constraint names out of its namespace.
    if conn.dialect.name == "postgresql":
        current = inspector.get_pk_constraint(table).get("name")
        wanted = primary_key_name(new)
        if current and wanted and current != wanted:
            conn.execute(_RenameIndex(current, wanted))  # renames the constraint with it
            report.renamed.append((current, wanted))


def _rename_index(
    conn: Connection, ops: Operations, table: str, before: IndexSpec, after: IndexSpec
) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_RenameIndex(before.name, after.name))
        return
    # SQLite can't rename an index: make it again under the new name.
    ops.drop_index(before.name, table_name=table)
    live = Column("deleted_at").is_(None)
    partial: dict[str, Any] = {"sqlite_where": live} if after.unique else {}
    ops.create_index(after.name, table, list(after.columns), unique=after.unique, **partial)


class _RenameIndex(ExecutableDDLElement):
    """ALTER INDEX … RENAME TO …, which neither SQLAlchemy nor Alembic offers (PostgreSQL)."""

    inherit_cache = False

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new


@compiles(_RenameIndex, "postgresql")
def _compile_rename_index(element: _RenameIndex, compiler: Any, **_kw: Any) -> str:
    # Both names are identifiers, quoted by the dialect's own preparer; nothing else goes in.
    quote = compiler.preparer.quote
    return f"ALTER INDEX {quote(element.old)} RENAME TO {quote(element.new)}"
