"""The metadata cache: every entity and its `Table`, every role, pipeline and approval process,
built once per metadata stamp.

Each request reads the stamp in its own transaction; a different stamp means another process
changed metadata, and the snapshot is rebuilt. Snapshots are immutable and shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, MetaData, Table

from metacrm.metadata import store
from metacrm.metadata.actions import ACTION, ActionDef
from metacrm.metadata.approvals import APPROVAL_PROCESS, ApprovalProcessDef
from metacrm.metadata.assignment_rules import ASSIGNMENT_RULE, AssignmentRuleDef
from metacrm.metadata.automations import AUTOMATION, AutomationDef
from metacrm.metadata.form_layouts import FORM_LAYOUT, FormLayoutDef
from metacrm.metadata.list_views import LIST_VIEW, ListViewDef
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import PIPELINE, PipelineDef
from metacrm.metadata.roles import ROLE, RoleDef
from metacrm.metadata.storage import build_table
from metacrm.platform.errors import NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class Catalog:
    stamp: int
    entities: dict[str, EntityDef] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    roles: dict[str, RoleDef] = field(default_factory=dict)
    pipelines: dict[str, PipelineDef] = field(default_factory=dict)
    approval_processes: dict[str, ApprovalProcessDef] = field(default_factory=dict)
    # Every other named kind (record actions, automations, list views …): kind → name → its
    # typed definition, as DOCUMENT_BUILDERS builds them.
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the runtime derives from this snapshot once and reuses (compiled rules, validators,
    # output plans, prepared statements): it lives exactly as long as the snapshot.
    _memo: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value derived under `key`, built on first use. Two threads may both build it
        the first time; either result is correct."""
        try:
            known: T = self._memo[key]
            return known
        except KeyError:
            made = self._memo[key] = build()
            return made

    def entity(self, name: str) -> EntityDef:
        found = self.entities.get(name)
        if found is None:
            raise NotFound(f"no entity named {name!r}")
        return found

    def table(self, name: str) -> Table:
        return self.tables[name]

    def find(self, name: str) -> EntityDef | None:
        return self.entities.get(name)

    def pipelines_of(self, entity: str) -> list[PipelineDef]:
        return [p for p in self.pipelines.values() if p.entity == entity]

    def approval_processes_of(self, entity: str) -> list[ApprovalProcessDef]:
        return [p for p in self.approval_processes.values() if p.entity == entity]

    def of_kind(self, kind: str) -> dict[str, Any]:
        """The documents of a kind in DOCUMENT_BUILDERS, by name."""
        return self.documents.get(kind, {})

    def of_kind_for(self, kind: str, entity: str) -> list[Any]:
        """The documents of a kind that name `entity` (their `entity` attribute), by name."""
        found = self.of_kind(kind)
        return [
            found[name] for name in sorted(found) if getattr(found[name], "entity", None) == entity
        ]


# Kind → how a stored document becomes its typed definition (`from_doc(document, version)`), for
# the kinds the catalog keeps in `documents`. A new kind of metadata is a row here.
DOCUMENT_BUILDERS: dict[str, Callable[[dict[str, Any], int], Any]] = {
    ACTION: ActionDef.from_doc,
    AUTOMATION: AutomationDef.from_doc,
    ASSIGNMENT_RULE: AssignmentRuleDef.from_doc,
    LIST_VIEW: ListViewDef.from_doc,
    FORM_LAYOUT: FormLayoutDef.from_doc,
}


def build_catalog(conn: Connection, stamp: int) -> Catalog:
    metadata = MetaData()
    entities: dict[str, EntityDef] = {}
    tables: dict[str, Table] = {}
    for doc in store.load_all(conn, store.ENTITY):
        entity = EntityDef.from_doc(doc.document, doc.version)
        entities[entity.name] = entity
        tables[entity.name] = build_table(entity, metadata)
    roles = {
        doc.name: RoleDef.from_doc(doc.document, doc.version) for doc in store.load_all(conn, ROLE)
    }
    pipelines = {
        doc.name: PipelineDef.from_doc(doc.document, doc.version)
        for doc in store.load_all(conn, PIPELINE)
    }
    processes = {
        doc.name: ApprovalProcessDef.from_doc(doc.document, doc.version)
        for doc in store.load_all(conn, APPROVAL_PROCESS)
    }
    documents = {
        kind: {doc.name: build(doc.document, doc.version) for doc in store.load_all(conn, kind)}
        for kind, build in DOCUMENT_BUILDERS.items()
    }
    return Catalog(stamp, entities, tables, roles, pipelines, processes, documents)


class CatalogCache:
    """One per process. `snapshot` costs one indexed single-row read when nothing changed."""

    def __init__(self) -> None:
        self._current = Catalog(stamp=-1)
        self._lock = threading.Lock()

    def snapshot(self, conn: Connection, stamp: int | None = None) -> Catalog:
        """The catalog for the stamp this transaction sees (read now unless given)."""
        if stamp is None:
            stamp = store.current_stamp(conn)
        current = self._current
        if current.stamp == stamp:
            return current
        with self._lock:
            if self._current.stamp != stamp:
                self._current = build_catalog(conn, stamp)
            return self._current

    def invalidate(self) -> None:
        self._current = Catalog(stamp=-1)
