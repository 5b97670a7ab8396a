"""Metadata packages: export entities, and the roles, pipelines, approval processes, record
actions, automations, assignment rules, list views and form layouts built on them, as one JSON
document; import them elsewhere.

Import of entities creates missing ones and changes existing ones through the designer, in
dependency order; entities that look each other up are created first without their lookups.
The other kinds are imported after the entities by the runtime (`runtime/packages.py`), since
a pipeline's change may move records.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata import store
from metacrm.metadata.actions import ACTION
from metacrm.metadata.approvals import APPROVAL_PROCESS
from metacrm.metadata.assignment_rules import ASSIGNMENT_RULE
from metacrm.metadata.automations import AUTOMATION
from metacrm.metadata.entities import DesignResult, EntityDesigner, public_document
from metacrm.metadata.form_layouts import FORM_LAYOUT
from metacrm.metadata.list_views import LIST_VIEW
from metacrm.metadata.pipelines import PIPELINE
from metacrm.metadata.roles import ROLE
from metacrm.metadata.validate import CONDITION_OPTIONS
from metacrm.platform.errors import FieldError, NotFound, Unprocessable

FORMAT = "metacrm.package"
FORMAT_VERSION = 1


# Package key → document kind, in the order an import applies them (after the entities).
DOCUMENT_KINDS = {
    "roles": ROLE,
    "pipelines": PIPELINE,
    "approval_processes": APPROVAL_PROCESS,
    "actions": ACTION,
    "automations": AUTOMATION,
    "assignment_rules": ASSIGNMENT_RULE,
    "list_views": LIST_VIEW,
    "form_layouts": FORM_LAYOUT,
}


def export_package(conn: Connection, names: list[str] | None = None) -> dict[str, Any]:
    """Every entity (or the named ones) with the documents on them (pipelines, approval
    processes, actions, automations, assignment rules, views, layouts); roles span entities,
    so they come with a whole export only."""
    documents = {d.name: d for d in store.load_all(conn, store.ENTITY)}
    missing = sorted(set(names or []) - set(documents))
    if missing:
        raise NotFound(f"no entity named {', '.join(map(repr, missing))}")
    chosen = sorted(names) if names else sorted(documents)
    package: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "entities": [public_document(documents[n].document) for n in chosen],
    }
    for key, kind in DOCUMENT_KINDS.items():
        if kind == ROLE and names:
            continue
        package[key] = [
            d.document
            for d in store.load_all(conn, kind)
            if not names or d.document.get("entity") in chosen
        ]
    return package


def import_package(designer: EntityDesigner, package: Any) -> list[DesignResult]:
    """Apply a package on the designer's connection; the caller's transaction makes it all or
    nothing (and a dry run is a transaction rolled back)."""
    entities = _entities(package)
    existing = {d.name for d in store.load_all(designer.conn, store.ENTITY)}
    results: list[DesignResult] = []
    new = [doc for doc in entities if doc["name"] not in existing]
    # New entities are built up in passes, so that everything they name exists when they are
    # checked: first without lookups (lookups between them can then resolve), then with their
    # lookups but without what may read through one (validation rules, formulas), then whole.
    for doc in new:
        bare = _without(doc, lambda f: f.get("type") not in ("lookup", "formula"))
        results.append(designer.create(bare))
    for doc in new:
        linked = _without(doc, lambda f: f.get("type") != "formula")
        if linked != _without(doc, lambda f: f.get("type") not in ("lookup", "formula")):
            results.append(designer.replace(doc["name"], linked, action="import"))
    for doc in entities:
        current = designer.current(doc["name"])
        if public_document(current.doc) != doc:
            results.append(designer.replace(doc["name"], doc, action="import"))
    return results


def _without(doc: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The entity with only the fields `keep` keeps, and none of the expressions that may name
    a field of another entity (validation and sharing rules, computed defaults, conditions)."""
    part = copy.deepcopy(doc)
    part["fields"] = [f for f in part.get("fields", []) if keep(f)]
    for field in part["fields"]:
        for option in ("default_expr", *CONDITION_OPTIONS):
            field.pop(option, None)
    if part.get("title_field") not in {f["name"] for f in part["fields"]}:
        part.pop("title_field", None)
    part.pop("validation_rules", None)
    part.pop("sharing_rules", None)
    return part


def _entities(package: Any) -> list[dict[str, Any]]:
    if not isinstance(package, dict) or package.get("format") != FORMAT:
        raise Unprocessable(
            "not a metacrm package",
            errors=[FieldError("/format", "format", f"must be {FORMAT!r}")],
        )
    entities = package.get("entities")
    if not isinstance(entities, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in entities
    ):
        raise Unprocessable(
            "the package's entities must be a list of entity documents",
            errors=[FieldError("/entities", "type", "must be a list of entity documents")],
        )
    docs = []
    for doc in entities:
        doc = copy.deepcopy(doc)
        doc.pop("version", None)
        doc.pop("hidden_fields", None)
        docs.append(doc)
    return docs
