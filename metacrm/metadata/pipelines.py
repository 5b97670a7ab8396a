"""Stage pipelines: the ordered stages a record moves through, bound to a picklist field.

A pipeline owns its field's options (the stage keys) and two derived fields, `stage_entered_at`
and `days_in_stage`; `entity_document` says what the entity becomes, `validate_pipeline` finds
every problem with a document. Neither touches record data: moving records is the runtime's job.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    pointer,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import FieldError

PIPELINE = "pipeline"
OPEN, WON, LOST = "open", "won", "lost"
# The forecast category a stage has when its document names none.
DEFAULT_FORECAST = {OPEN: "pipeline", WON: "closed", LOST: "omitted"}
ENTERED_AT, DAYS_IN_STAGE = "stage_entered_at", "days_in_stage"
# Added to the entity by the pipeline service unless fields of these names exist.
DERIVED_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": ENTERED_AT,
        "type": "datetime",
        "label": {"en": "Stage entered at"},
        "read_only": True,
        "indexed": True,
    },
    {
        "name": DAYS_IN_STAGE,
        "type": "formula",
        "label": {"en": "Days in stage"},
        "result_type": "integer",
        "expression": f"days_between({ENTERED_AT}, today())",
    },
)
PROBABILITY_TYPES = ("integer", "decimal")


@dataclass(frozen=True)
class Stage:
    key: str
    label: Mapping[str, str]
    category: str
    probability: int
    forecast_category: str
    entry_condition: str | None
    required_fields: tuple[str, ...]
    target_days: int | None
    actions: tuple[Mapping[str, Any], ...]
    doc: Mapping[str, Any]

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Stage:
        return cls(
            key=doc["key"],
            label=doc["label"],
            category=doc["category"],
            probability=doc["probability"],
            forecast_category=doc.get("forecast_category") or DEFAULT_FORECAST[doc["category"]],
            entry_condition=doc.get("entry_condition"),
            required_fields=tuple(doc.get("required_fields") or ()),
            target_days=doc.get("target_days"),
            actions=tuple(doc.get("actions") or ()),
            doc=doc,
        )


@dataclass(frozen=True)
class PipelineDef:
    name: str
    entity: str
    field: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> PipelineDef:
        return cls(doc["name"], doc["entity"], doc["field"], doc, version)

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(Stage.from_doc(s) for s in self.doc["stages"])

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.stages)

    def stage(self, key: Any) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)

    @property
    def lost_reason_field(self) -> str | None:
        return self.doc.get("lost_reason_field")

    @property
    def probability_field(self) -> str | None:
        return self.doc.get("probability_field")

    def allows(self, old: str, new: str) -> bool:
        """Any move is allowed unless the document lists transitions; then only those listed (a
        stage with no entry is a dead end). A record in a stage the pipeline no longer has (one a
        change removed) may move to any stage."""
        transitions = self.doc.get("transitions")
        if transitions is None or old not in self.keys:
            return True
        return any(t["from"] == old and new in t["to"] for t in transitions)


def entity_document(
    entity_doc: Mapping[str, Any],
    pipeline_doc: Mapping[str, Any],
    mapping: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The entity as the pipeline needs it: the stage field's options are the stages (keeping
    an option's colour), the derived fields exist. A field default that is no stage any more
    follows the mapping, else becomes the first stage."""
    doc = copy.deepcopy(dict(entity_doc))
    doc.pop("hidden_fields", None)
    fields = doc.setdefault("fields", [])
    stages = pipeline_doc["stages"]
    keys = [s["key"] for s in stages]
    for field in fields:
        if field.get("name") != pipeline_doc["field"]:
            continue
        colours = {o["value"]: o["color"] for o in field.get("options", []) if "color" in o}
        field["options"] = [
            {"value": s["key"], "label": s["label"]}
            | ({"color": colours[s["key"]]} if s["key"] in colours else {})
            for s in stages
        ]
        if "default" in field and field["default"] not in keys:
            field["default"] = (mapping or {}).get(field["default"]) or keys[0]
    names = {f.get("name") for f in fields}
    fields.extend(copy.deepcopy(f) for f in DERIVED_FIELDS if f["name"] not in names)
    return doc


def validate_pipeline(
    doc: Any,
    entities: Mapping[str, EntityDef],
    pipelines: Mapping[str, PipelineDef],
    check_expression: ExpressionChecker | None = None,
) -> list[FieldError]:
    """Every problem with a pipeline document, each with a JSON Pointer. `pipelines` are the
    others that exist (the one being replaced may be among them). Schema errors and errors of
    meaning come together: the checks of meaning skip only the parts the schema finds broken."""
    check = schema_check(PIPELINE, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    field_errors = _field_errors(doc, entity, pipelines, check)
    if field_errors or not check.sound("field"):
        # The stages are options of that field: without it there is nothing to check them on.
        return errors + field_errors
    stages = check.items(doc, "stages")
    keyed = {i: s["key"] for i, s in enumerate(stages) if check.sound("stages", i, "key")}
    errors.extend(_stage_key_errors(keyed))
    if not keyed:
        return errors
    target = EntityDef.from_doc(entity_document(entity.doc, _with_sound_stages(doc, check)))
    for i, stage in enumerate(stages):
        if check.sound_place("stages", i):
            errors.extend(
                _stage_errors(
                    stage, ("stages", i), check, doc["field"], target, entities, check_expression
                )
            )
    # With a stage key missing, a transition naming it would look unknown.
    if len(keyed) == len(stages):
        errors.extend(_transition_errors(doc, set(keyed.values()), check))
    return errors


def _with_sound_stages(doc: dict[str, Any], check: SchemaCheck) -> dict[str, Any]:
    """The pipeline as far as the entity's options go: the stages with a sound key, each with
    its label, or its key as the label when the label is broken."""
    stages = [
        {
            "key": s["key"],
            "label": s["label"] if check.sound("stages", i, "label") else {"en": s["key"]},
        }
        for i, s in enumerate(doc["stages"])
        if check.sound("stages", i, "key")
    ]
    return {**doc, "stages": stages}


def _field_errors(
    doc: dict[str, Any],
    entity: EntityDef,
    pipelines: Mapping[str, PipelineDef],
    check: SchemaCheck,
) -> list[FieldError]:
    errors = []
    name = entity.name
    if check.sound("field"):
        field = entity.field(doc["field"])
        if field is None or field.system:
            errors.append(
                FieldError("/field", "unknown_field", f"{name} has no field {doc['field']!r}")
            )
        elif field.type != "picklist":
            errors.append(
                FieldError(
                    "/field", "not_picklist", f"{field.name} is a {field.type}, not a picklist"
                )
            )
        for other in pipelines.values():
            if other.name != doc.get("name") and (other.entity, other.field) == (
                name,
                doc["field"],
            ):
                errors.append(
                    FieldError("/field", "duplicate", f"pipeline {other.name!r} already drives it")
                )
    allowed: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("lost_reason_field", ("picklist",)),
        ("probability_field", PROBABILITY_TYPES),
    )
    for option, types in allowed:
        if option not in doc or not check.sound(option):
            continue
        found = entity.field(doc[option])
        if found is None or found.system:
            errors.append(
                FieldError(f"/{option}", "unknown_field", f"{name} has no field {doc[option]!r}")
            )
        elif found.type not in types:
            errors.append(
                FieldError(
                    f"/{option}", "field_type", f"must be a {' or '.join(types)}, not {found.type}"
                )
            )
    for derived in DERIVED_FIELDS:
        found = entity.field(derived["name"])
        if found is not None and not _same_kind(found, derived):
            errors.append(
                FieldError(
                    "/entity",
                    "derived_field",
                    f"{name}.{found.name} must be a {_kind_name(derived)} for a pipeline; "
                    f"it is a {_kind_name(found.doc)}",
                )
            )
    return errors


def _same_kind(found: FieldDef, wanted: Mapping[str, Any]) -> bool:
    return _kind_name(found.doc) == _kind_name(wanted)


def _kind_name(doc: Mapping[str, Any]) -> str:
    if doc.get("type") == "formula":
        return f"formula giving {doc.get('result_type', 'text')}"
    return str(doc.get("type"))


def _stage_key_errors(keys: Mapping[int, str]) -> list[FieldError]:
    errors = []
    seen: set[str] = set()
    for i, key in keys.items():
        if not key.strip():
            errors.append(FieldError(f"/stages/{i}/key", "empty", "a stage key can't be blank"))
        elif key in seen:
            errors.append(FieldError(f"/stages/{i}/key", "duplicate", f"{key!r} is repeated"))
        seen.add(key)
    return errors


def _stage_errors(
    stage: dict[str, Any],
    at: tuple[str, int],
    check: SchemaCheck,
    stage_field: str,
    entity: EntityDef,
    entities: Mapping[str, EntityDef],
    check_expression: ExpressionChecker | None,
) -> list[FieldError]:
    errors = []
    where = pointer(*at)
    condition = stage.get("entry_condition") if check.sound(*at, "entry_condition") else None
    if condition is not None and check_expression is not None:
        site = ExpressionSite(f"{where}/entry_condition", condition, "boolean", True)
        errors.extend(check_expression(entity.doc, site))
    required = stage.get("required_fields") if check.sound(*at, "required_fields") else None
    for j, name in enumerate(required or ()):
        found = entity.field(name)
        if found is None or found.type == "formula":
            errors.append(
                FieldError(
                    f"{where}/required_fields/{j}", "unknown_field", f"no field named {name!r}"
                )
            )
    for j, action in enumerate(check.items(stage, *at, "actions")):
        if not check.sound(*at, "actions", j):
            continue
        place = f"{where}/actions/{j}"
        if action["type"] == "set_field":
            managed = (stage_field, ENTERED_AT)
            errors.extend(_set_field_errors(action, place, entity, managed, check_expression))
        elif action["type"] == "create_record":
            errors.extend(_create_errors(action, place, entity, entities, check_expression))
    return errors


def settable(field: FieldDef | None) -> bool:
    """Whether a stage action may write the field: a stored, writable field of the entity."""
    return field is not None and not field.system and field.stored and field.type != "autonumber"


def _set_field_errors(
    action: dict[str, Any],
    at: str,
    entity: EntityDef,
    managed: tuple[str, ...],
    check: ExpressionChecker | None,
) -> list[FieldError]:
    field = entity.field(action["field"])
    if field is None or not settable(field) or field.name in managed:
        return [
            FieldError(
                f"{at}/field", "unknown_field", f"{entity.name} has no settable {action['field']!r}"
            )
        ]
    if check is None:
        return []
    site = ExpressionSite(f"{at}/expression", action["expression"], field.value_kind, True)
    return check(entity.doc, site)


def _create_errors(
    action: dict[str, Any],
    at: str,
    entity: EntityDef,
    entities: Mapping[str, EntityDef],
    check: ExpressionChecker | None,
) -> list[FieldError]:
    target = entity if action["entity"] == entity.name else entities.get(action["entity"])
    if target is None:
        return [FieldError(f"{at}/entity", "unknown_entity", f"no entity {action['entity']!r}")]
    errors = []
    for name, expression in action["values"].items():
        field = target.field(name)
        if field is None or (name != "owner" and not settable(field)):
            errors.append(
                FieldError(f"{at}/values/{name}", "unknown_field", f"{target.name} has no {name!r}")
            )
        elif check is not None:
            site = ExpressionSite(f"{at}/values/{name}", expression, field.value_kind)
            errors.extend(check(entity.doc, site))
    return errors


def _transition_errors(doc: dict[str, Any], keys: set[str], check: SchemaCheck) -> list[FieldError]:
    errors = []
    sources: set[str] = set()
    for i, transition in enumerate(check.items(doc, "transitions")):
        at = f"/transitions/{i}"
        if check.sound("transitions", i, "from"):
            if transition["from"] not in keys:
                errors.append(
                    FieldError(f"{at}/from", "unknown_stage", f"no stage {transition['from']!r}")
                )
            elif transition["from"] in sources:
                errors.append(FieldError(f"{at}/from", "duplicate", "list each stage's moves once"))
            sources.add(transition["from"])
        if check.sound("transitions", i, "to"):
            for j, key in enumerate(transition["to"]):
                if key not in keys:
                    errors.append(FieldError(f"{at}/to/{j}", "unknown_stage", f"no stage {key!r}"))
    return errors
