"""The migration planner: the difference between two versions of an entity as operations.

Pure: it reads two documents and returns a plan or the reasons there can be none. What existing
data must satisfy is part of each operation (`checks`); the runner asks the database.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from metacrm.metadata.conversions import CONVERSIONS, REWRITE, allowed_targets
from metacrm.metadata.model import FIELD_STORAGE_KEY, STORAGE_KEY, EntityDef, FieldDef
from metacrm.metadata.storage import (
    assign_storage_ids,
    storage_signature,
    wants_index,
    wants_unique,
)
from metacrm.platform.errors import FieldError


@dataclass(frozen=True)
class Operation:
    """One step of a migration. `kind` names it; the runner has one handler per kind."""

    kind: str
    field: FieldDef | None = None
    old_field: FieldDef | None = None
    # Data checks to run before anything changes: "values" (every value valid for `field`),
    # "required" (no blanks), "unique" (no duplicates), "rows_need_default".
    checks: tuple[str, ...] = ()

    def describe(self) -> str:
        name = self.field.name if self.field else ""
        old = self.old_field.name if self.old_field else ""
        return {
            "create_table": "create the table",
            "add_column": f"add column {name}",
            "backfill": f"fill {name} with its default on existing rows",
            "hide_field": f"hide field {name} (its data is kept)",
            "unhide_field": f"show field {name} again",
            "drop_column": f"drop column {name} and its data for good",
            "rename_column": f"rename column {old} to {name}",
            "create_index": f"index {name}",
            "drop_index": f"drop the index on {name}",
            "create_unique": f"make {name} unique",
            "drop_unique": f"drop the unique constraint on {name}",
            "change_type": f"change {name} from {old and self.old_field.type} to "
            f"{self.field and self.field.type}",
            "check_values": f"check existing values of {name} against its new definition",
            "check_required": f"check {name} has a value on every row",
            "hide_entity": "hide the entity (its table and records are kept)",
            "drop_table": "drop the table and its records for good",
        }[self.kind]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.kind, "description": self.describe()}
        if self.field is not None:
            out["field"] = self.field.name
        if self.old_field is not None and self.old_field.name != getattr(self.field, "name", None):
            out["from"] = self.old_field.name
        return out


# Operations that change the metadata and leave the table as it is.
_METADATA_ONLY = ("hide_field", "unhide_field", "hide_entity")


@dataclass
class Plan:
    entity: EntityDef
    operations: list[Operation] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)

    @property
    def changes_schema(self) -> bool:
        return any(op.kind not in _METADATA_ONLY for op in self.operations)

    def as_json(self) -> dict[str, Any]:
        return {"entity": self.entity.name, "operations": [op.as_json() for op in self.operations]}


def plan_create(document: dict[str, Any], *, storage_id: int) -> Plan:
    """`storage_id`: the new entity's id, unique in the database (store.next_entity_storage_id)."""
    doc = _clean(document)
    doc["hidden_fields"] = []
    entity = EntityDef.from_doc(assign_storage_ids(doc, storage_id))
    ops = [Operation("create_table")]
    for f in entity.fields:
        ops.extend(_index_ops(None, f))
    return Plan(entity, ops)


def plan_change(current: dict[str, Any], document: dict[str, Any]) -> Plan:
    """From the stored document (with its hidden fields) to a newly submitted one."""
    old = EntityDef.from_doc(current)
    new_doc = _clean(document)
    _carry_storage_ids(old, document, new_doc)
    old_active = {f.name: f for f in old.fields}
    hidden = {f.name: f for f in old.hidden_fields}
    plan = Plan(EntityDef.from_doc(new_doc))
    ops = plan.operations
    kept_hidden = dict(hidden)
    matched: set[str] = set()
    submitted_names = {f.get("name") for f in document.get("fields", [])}

    for i, raw in enumerate(document.get("fields", [])):
        new = FieldDef.from_doc(new_doc["fields"][i])
        source = raw.get("renamed_from")
        if source is not None:
            if source in matched or source in submitted_names:
                plan.errors.append(
                    FieldError(
                        f"/fields/{i}/renamed_from",
                        "conflict",
                        f"{source!r} is kept or renamed by another field too",
                    )
                )
                continue
            if source not in old_active:
                plan.errors.append(
                    FieldError(
                        f"/fields/{i}/renamed_from",
                        "unknown_field",
                        f"there is no active field {source!r} to rename",
                    )
                )
                continue
            if new.name in old_active or new.name in hidden:
                plan.errors.append(
                    FieldError(
                        f"/fields/{i}/name",
                        "exists",
                        f"a field named {new.name!r} already exists (hidden fields count)",
                    )
                )
                continue
            matched.add(source)
            prior = old_active[source]
            if prior.stored:
                ops.append(Operation("rename_column", new, prior))
            _field_change(plan, i, FieldDef.from_doc({**prior.doc, "name": new.name}), new)
        elif new.name in old_active:
            matched.add(new.name)
            _field_change(plan, i, old_active[new.name], new)
        elif new.name in hidden:
            prior = kept_hidden.pop(new.name)
            ops.append(Operation("unhide_field", new))
            _field_change(plan, i, prior, new)
        else:
            ops.append(
                Operation("add_column", new) if new.stored else Operation("unhide_field", new)
            )
            if new.stored and new.has_default:
                ops.append(Operation("backfill", new))
            elif new.stored and new.required:
                ops.append(Operation("check_required", new, checks=("rows_need_default",)))
            ops.extend(_index_ops(None, new))

    for name, prior in old_active.items():
        if name not in matched:
            ops.append(Operation("hide_field", prior))
            if prior.stored:
                kept_hidden[name] = prior
    new_doc["hidden_fields"] = [f.doc for f in kept_hidden.values()]
    plan.entity = EntityDef.from_doc(new_doc)
    return plan


def _carry_storage_ids(old: EntityDef, submitted: dict[str, Any], new_doc: dict[str, Any]) -> None:
    """Each field keeps its id through a rename, a type change or a spell hidden, so its indexes
    keep their names; a new field takes the entity's next id, never one used before."""
    storage = old.doc.get(STORAGE_KEY)
    if storage is None:
        return  # stored before ids: keeps the old names until `metacrm init` upgrades it
    ids = {f.name: f.storage_id for f in (*old.fields, *old.hidden_fields)}
    next_id = storage["next_field_id"]
    for raw, stored in zip(submitted.get("fields", []), new_doc.get("fields", []), strict=True):
        known = ids.get(raw.get("renamed_from") or stored["name"])
        if known is None:
            known, next_id = next_id, next_id + 1
        stored[FIELD_STORAGE_KEY] = known
    new_doc[STORAGE_KEY] = {**storage, "next_field_id": next_id}


def plan_purge(current: dict[str, Any], name: str) -> Plan:
    """Drop a field and its data for good, whether it is active or already hidden."""
    doc = copy.deepcopy(current)
    entity = EntityDef.from_doc(doc)
    target = next((f for f in (*entity.fields, *entity.hidden_fields) if f.name == name), None)
    plan = Plan(entity)
    if target is None:
        plan.errors.append(FieldError("/fields", "unknown_field", f"no field named {name!r}"))
        return plan
    doc["fields"] = [f for f in doc.get("fields", []) if f["name"] != name]
    doc["hidden_fields"] = [f for f in doc.get("hidden_fields", []) if f["name"] != name]
    if doc.get("title_field") == name:
        plan.errors.append(
            FieldError(
                "/title_field", "in_use", f"{name!r} is the title field; choose another first"
            )
        )
    plan.entity = EntityDef.from_doc(doc)
    if target.stored:
        plan.operations.extend(_index_ops(target, None))
        plan.operations.append(Operation("drop_column", target))
    return plan


def plan_remove(current: dict[str, Any], *, purge: bool) -> Plan:
    """Take an entity away: hide it (table and records kept, restorable) or, with `purge`, drop
    its table for good. What depends on the entity is the caller's to refuse first."""
    entity = EntityDef.from_doc(copy.deepcopy(current))
    return Plan(entity, [Operation("drop_table" if purge else "hide_entity")])


def _field_change(plan: Plan, i: int, old: FieldDef, new: FieldDef) -> None:
    ops = plan.operations
    if old.type != new.type or (old.stored and storage_signature(old) != storage_signature(new)):
        if old.type == new.type:
            mode = REWRITE  # decimal precision or scale
        elif not old.stored and not new.stored:
            mode = "none"
        else:
            mode = CONVERSIONS.get((old.type, new.type))
        if mode is None:
            targets = ", ".join(allowed_targets(old.type)) or "nothing"
            plan.errors.append(
                FieldError(
                    f"/fields/{i}/type",
                    "type_change",
                    f"{old.name} can't change from {old.type} to {new.type}; "
                    f"{old.type} can become: {targets}",
                )
            )
            return
        if mode == REWRITE:
            ops.extend(_index_ops(old, None))
            ops.append(Operation("change_type", new, old, checks=("values",)))
            ops.extend(_index_ops(None, new))
            if new.required:
                ops.append(Operation("check_required", new, checks=("required",)))
            return
        if mode != "none":
            ops.append(Operation("check_values", new, old, checks=("values",)))
    elif new.stored and _tightened(old, new):
        ops.append(Operation("check_values", new, old, checks=("values",)))
    if new.stored and new.required and not old.required:
        ops.append(Operation("check_required", new, checks=("required",)))
    ops.extend(_index_ops(old, new))


# Options that can make existing values invalid when they change.
_CONSTRAINT_OPTIONS = ("max_length", "min", "max", "options", "precision", "scale")


def _tightened(old: FieldDef, new: FieldDef) -> bool:
    return any(old.doc.get(k) != new.doc.get(k) for k in _CONSTRAINT_OPTIONS)


def _index_ops(old: FieldDef | None, new: FieldDef | None) -> list[Operation]:
    ops = []
    had_index, has_index = bool(old and wants_index(old)), bool(new and wants_index(new))
    had_unique, has_unique = bool(old and wants_unique(old)), bool(new and wants_unique(new))
    if had_index and not has_index:
        ops.append(Operation("drop_index", old))
    if had_unique and not has_unique:
        ops.append(Operation("drop_unique", old))
    if has_index and not had_index:
        ops.append(Operation("create_index", new))
    if has_unique and not had_unique:
        ops.append(Operation("create_unique", new, checks=("unique",)))
    return ops


def _clean(document: dict[str, Any]) -> dict[str, Any]:
    """The document as stored: without hints such as `renamed_from` or a client's `version`, and
    without storage ids, which only the platform gives (the planner carries them over)."""
    doc = copy.deepcopy(document)
    doc.pop("version", None)
    doc.pop("hidden_fields", None)
    doc.pop(STORAGE_KEY, None)
    for f in doc.get("fields", []):
        f.pop("renamed_from", None)
        f.pop(FIELD_STORAGE_KEY, None)
    return doc
