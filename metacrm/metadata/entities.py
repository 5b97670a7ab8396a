"""Designing entities: validate → plan → check → apply → store a version, in one transaction.

Every change to an entity document, from the API, the CLI or a package import, comes here.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata import store
from metacrm.metadata.labels import with_label_maps
from metacrm.metadata.migrate import apply_plan, check_plan
from metacrm.metadata.model import EntityDef, without_storage_ids
from metacrm.metadata.planner import Plan, plan_change, plan_create, plan_purge, plan_remove
from metacrm.metadata.types import FIELD_TYPES
from metacrm.metadata.validate import ExpressionChecker, validate_entity, validate_field
from metacrm.platform.errors import (
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)

# The schema of a field document on its own (where it holds labels).
FIELD_SCHEMA = "field"


@dataclass(frozen=True)
class DesignResult:
    entity: EntityDef
    plan: Plan
    applied: bool


class EntityDesigner:
    """Changes entity metadata on one connection (the caller's transaction)."""

    def __init__(
        self,
        conn: Connection,
        *,
        author: str | None,
        check_expression: ExpressionChecker | None = None,
        validators: Collection[str] | None = None,
    ) -> None:
        """`validators`: the names of the validators registered in the server, which the
        hooks of validation rules must name (None: not checked)."""
        self.conn, self.author, self.check_expression = conn, author, check_expression
        self.validators = validators

    def current(self, name: str) -> EntityDef:
        found = store.get(self.conn, store.ENTITY, name)
        if found is None:
            raise self._missing(name)
        return EntityDef.from_doc(found.document, found.version)

    def _missing(self, name: str) -> NotFound:
        if store.removed(self.conn, store.ENTITY, name) is not None:
            return NotFound(f"entity {name!r} was deleted; restore it to change it")
        return NotFound(f"no entity named {name!r}")

    def _known(self) -> set[str]:
        return {d.name for d in store.load_all(self.conn, store.ENTITY)}

    def _validate(self, document: Any, known: set[str]) -> None:
        errors = validate_entity(document, known, self.check_expression, self.validators)
        if errors:
            raise Unprocessable("the entity document is not valid", errors=errors)

    def create(self, document: Any, *, dry_run: bool = False) -> DesignResult:
        document = with_label_maps(store.ENTITY, document)
        known = self._known()
        self._validate(document, known)
        name = document["name"]
        if name in known:
            raise Conflict(f"an entity named {name!r} already exists")
        if store.removed(self.conn, store.ENTITY, name) is not None:
            raise Conflict(
                f"entity {name!r} was deleted and its table and records are kept: restore it, "
                "or purge it (DELETE with ?purge=true) before reusing the name"
            )
        # A dry run takes no id (0 names nothing; its plan is never applied).
        storage_id = 0 if dry_run else store.next_entity_storage_id(self.conn)
        return self._run(None, plan_create(document, storage_id=storage_id), "create", dry_run)

    def replace(
        self,
        name: str,
        document: Any,
        *,
        dry_run: bool = False,
        expected_version: int | None = None,
        action: str = "update",
    ) -> DesignResult:
        old = self.current(name)
        document = with_label_maps(store.ENTITY, document)
        if isinstance(document, dict) and document.get("name", name) != name:
            raise Unprocessable(
                "an entity can't be renamed",
                errors=[FieldError("/name", "immutable", f"must stay {name!r}")],
            )
        if expected_version is not None and expected_version != old.version:
            raise PreconditionFailed(
                f"entity {name!r} is at version {old.version}, not {expected_version}"
            )
        self._validate(document, self._known())
        return self._run(old, plan_change(old.doc, document), action, dry_run)

    def add_field(self, name: str, field: Any) -> DesignResult:
        old = self.current(name)
        field = with_label_maps(FIELD_SCHEMA, field)
        errors = validate_field(field, ("fields", len(old.fields)), self._known())
        if errors:
            raise Unprocessable("the field is not valid", errors=errors)
        if old.field(field["name"]) is not None:
            raise Conflict(f"{name} already has a field named {field['name']!r}")
        document = public_document(old.doc)
        document["fields"].append(field)
        return self.replace(name, document)

    def change_field(self, name: str, field_name: str, changes: Any) -> DesignResult:
        old = self.current(name)
        if not isinstance(changes, dict):
            raise Unprocessable(
                "the change must be a JSON object",
                errors=[FieldError("", "type", "must be an object")],
            )
        document = public_document(old.doc)
        index = _field_index(document, field_name)
        previous = document["fields"][index]
        merged = {**previous, **changes}
        new_type = FIELD_TYPES.get(str(merged.get("type")))
        if new_type is not None and merged["type"] != previous["type"]:
            # Options of the old type that the new one doesn't take go with the old type.
            for option in FIELD_TYPES[previous["type"]].options - new_type.options:
                if option not in changes:
                    merged.pop(option, None)
        for key, value in changes.items():
            if value is None:
                merged.pop(key)
        if merged.get("name") != field_name:
            merged["renamed_from"] = field_name
        document["fields"][index] = merged
        if document.get("title_field") == field_name and "renamed_from" in merged:
            document["title_field"] = merged["name"]
        return self.replace(name, document)

    def delete_field(self, name: str, field_name: str, *, purge: bool = False) -> DesignResult:
        old = self.current(name)
        if purge:
            plan = plan_purge(old.doc, field_name)
            return self._run(old, plan, "purge", dry_run=False)
        document = public_document(old.doc)
        index = _field_index(document, field_name)
        if document.get("title_field") == field_name:
            raise Unprocessable(
                f"{field_name!r} is the title field; choose another title field first",
                errors=[FieldError("/title_field", "in_use", "is the field being removed")],
            )
        del document["fields"][index]
        return self.replace(name, document, action="hide")

    def delete(self, name: str, *, purge: bool = False) -> DesignResult:
        """Take the entity away: hidden with its table and records kept (restorable), or with
        `purge` its table dropped for good, which also finishes a deletion made before.
        Refusing while other metadata depends on the entity is the caller's job (it needs the
        rule language and the webhooks, which metadata doesn't know)."""
        found = store.get(self.conn, store.ENTITY, name) or (
            store.removed(self.conn, store.ENTITY, name) if purge else None
        )
        if found is None:
            raise self._missing(name)
        document = found.document
        old = EntityDef.from_doc(document)
        plan = plan_remove(document, purge=purge)
        apply_plan(self.conn, old, plan)
        action = store.PURGE if purge else store.DELETE
        version = store.remove(self.conn, store.ENTITY, name, author=self.author, action=action)
        return DesignResult(EntityDef.from_doc(document, version), plan, applied=True)

    def restore(self, name: str, version: int) -> DesignResult:
        """Bring back a past version. A deleted entity comes back over its kept table (and
        under its storage ids, so its indexes still match), records intact; a purged one comes
        back with an empty table under a new id."""
        document = public_document(store.version_document(self.conn, store.ENTITY, name, version))
        if store.get(self.conn, store.ENTITY, name) is not None:
            return self.replace(name, document, action=f"restore:{version}")
        self._validate(document, self._known())
        removed = store.removed(self.conn, store.ENTITY, name)
        if removed is None:
            storage_id = store.next_entity_storage_id(self.conn)
            plan = plan_create(document, storage_id=storage_id)
            return self._run(None, plan, "restore", dry_run=False)
        old = EntityDef.from_doc(removed.document)
        return self._run(old, plan_change(old.doc, document), "restore", dry_run=False)

    def undelete(self, name: str) -> DesignResult:
        """Bring a deleted entity back as it was when it was deleted."""
        removed = store.removed(self.conn, store.ENTITY, name)
        if removed is None:
            if store.get(self.conn, store.ENTITY, name) is not None:
                raise Conflict(f"entity {name!r} is not deleted")
            raise self._missing(name)
        return self.restore(name, removed.version)

    def _run(self, old: EntityDef | None, plan: Plan, action: str, dry_run: bool) -> DesignResult:
        if plan.errors:
            raise Unprocessable("the change can't be made", errors=plan.errors)
        if dry_run:
            problems = check_plan(self.conn, old, plan)
            if problems:
                raise Unprocessable("existing records can't take this change", errors=problems)
            # A preview shows the version the change would get if it were made now.
            version = store.next_version(self.conn, store.ENTITY, plan.entity.name)
            return DesignResult(EntityDef.from_doc(plan.entity.doc, version), plan, applied=False)
        apply_plan(self.conn, old, plan)
        version = store.save(
            self.conn,
            store.ENTITY,
            plan.entity.name,
            plan.entity.doc,
            author=self.author,
            action=action.split(":")[0],
        )
        return DesignResult(EntityDef.from_doc(plan.entity.doc, version), plan, applied=True)


def _field_index(document: dict[str, Any], field_name: str) -> int:
    for i, f in enumerate(document.get("fields", [])):
        if f["name"] == field_name:
            return i
    raise NotFound(f"entity {document['name']!r} has no field {field_name!r}")


def public_document(stored: dict[str, Any]) -> dict[str, Any]:
    """The document as an admin writes it: without the platform's record of hidden fields and
    its storage ids."""
    document = copy.deepcopy(without_storage_ids(stored))
    document.pop("hidden_fields", None)
    return document
