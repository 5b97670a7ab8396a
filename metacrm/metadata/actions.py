"""Record action documents: a named operation on a record (`close`, `claim`, `convert` …) — when
it is available, the permission it needs, the input it takes and the steps it runs.

Actions are metadata: validated against `action.schema.json` and against what they name (the
entity and its fields, pipelines and stages, approval processes, the hooks registered at
start-up), versioned in the store and designed through `ActionDesigner`. Two entities may each
have an action of the same name (`lead.claim`, `customer.claim`): a document is stored under
`<entity>.<name>`, and the records API calls it by its name on its entity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import Connection

from metacrm.metadata.approvals import ApprovalProcessDef
from metacrm.metadata.documents import DocumentDesigner, DocumentKind
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.pipelines import PipelineDef
from metacrm.metadata.validate import (
    ExpressionChecker,
    ExpressionSite,
    SchemaCheck,
    pointer,
    schema_check,
    text_errors,
)
from metacrm.platform.errors import FieldError, Unprocessable

ACTION = "action"
STEP_TYPES = ("set_fields", "move_stage", "create_record", "submit_approval", "hook")
# The store keys documents by name in a column this long: "<entity>.<name>" must fit.
MAX_KEY_LENGTH = 63
# How deep into nested objects of an input schema `input.a.b…` may reach.
MAX_INPUT_DEPTH = 8

# Value types of the rule language an input value can have (by its JSON Schema type), or None.
InputTypes = Mapping[tuple[str, ...], str | None]


def action_key(entity: str, name: str) -> str:
    """The name an action's document is stored under: its entity's name and its own."""
    return f"{entity}.{name}"


def document_key(doc: Mapping[str, Any]) -> str:
    return action_key(str(doc["entity"]), str(doc["name"]))


@dataclass(frozen=True)
class ActionDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> ActionDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def key(self) -> str:
        return action_key(self.entity, self.name)

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def condition(self) -> str | None:
        return self.doc.get("condition")

    @property
    def unavailable_message(self) -> Mapping[str, str] | None:
        return self.doc.get("unavailable_message")

    @property
    def permission(self) -> str:
        return str(self.doc["permission"])

    @property
    def input_schema(self) -> Mapping[str, Any] | None:
        return self.doc.get("input_schema")

    @property
    def steps(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.doc.get("steps") or ())

    @cached_property
    def input_types(self) -> dict[tuple[str, ...], str | None]:
        return input_types(self.input_schema or {})


# ---- the input schema -------------------------------------------------------------------------

# JSON Schema type (and string format) → the rule language's value type.
_SCALAR_TYPES = {"integer": "integer", "number": "decimal", "boolean": "boolean"}
_STRING_FORMATS = {"date": "date", "date-time": "datetime"}


def input_types(schema: Mapping[str, Any]) -> dict[tuple[str, ...], str | None]:
    """Each key path of the input an expression may read (`input.a.b` is ("a", "b")) with its
    value type; objects with properties are followed, other values the rule language can't
    hold (lists, free-form objects) are there with None."""
    found: dict[tuple[str, ...], str | None] = {}
    stack: list[tuple[Mapping[str, Any], tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        properties = node.get("properties")
        if not isinstance(properties, Mapping) or len(path) >= MAX_INPUT_DEPTH:
            continue
        for key, sub in properties.items():
            here = (*path, str(key))
            if not isinstance(sub, Mapping):
                found[here] = None
            elif _json_types(sub) == {"object"} and isinstance(sub.get("properties"), Mapping):
                stack.append((sub, here))
            else:
                found[here] = _value_type(sub)
    return found


def _json_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema allows besides null (from `type`, else from `const`/`enum`)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared} - {"null"}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)} - {"null"}
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if not isinstance(values, list):
        return set()
    return {_json_kind(v) for v in values if v is not None}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _value_type(schema: Mapping[str, Any]) -> str | None:
    kinds = _json_types(schema)
    if kinds == {"integer", "number"}:
        return "decimal"
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    if kind == "string":
        return _STRING_FORMATS.get(str(schema.get("format")), "text")
    return _SCALAR_TYPES.get(kind)


# Keywords of a JSON Schema that hold one subschema, a list of them, or a map of them.
_ONE = (
    *("items", "not", "if", "then", "else", "contains", "propertyNames"),
    *("additionalProperties", "unevaluatedProperties", "unevaluatedItems"),
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas")
# An input schema lives on inside the OpenAPI document and is applied to requests: it may not
# point anywhere else (nor name itself for others to point at).
_REFERENCES = ("$ref", "$dynamicRef", "$id", "$anchor", "$dynamicAnchor", "$defs", "$schema")


def _subschemas(schema: Any, at: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """A schema and every schema inside it, with their pointers."""
    if not isinstance(schema, Mapping):
        return
    yield schema, at
    for key in _ONE:
        yield from _subschemas(schema.get(key), f"{at}/{key}")
    for key in _MANY:
        items = schema.get(key)
        for i, sub in enumerate(items if isinstance(items, list) else ()):
            yield from _subschemas(sub, f"{at}/{key}/{i}")
    for key in _MAP:
        members = schema.get(key)
        for name, sub in (members if isinstance(members, Mapping) else {}).items():
            yield from _subschemas(sub, f"{at}/{key}{pointer(name)}")


def input_schema_errors(schema: Any, at: str = "/input_schema") -> list[FieldError]:
    """Whether an input schema is a JSON Schema an API client can be generated from: valid
    Draft 2020-12, an object at the top, no references, and every array and object saying
    what it holds."""
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    errors = [
        FieldError(at + pointer(*e.absolute_path), "schema", e.message)
        for e in sorted(meta.iter_errors(schema), key=lambda e: list(e.absolute_path))
    ]
    if errors or not isinstance(schema, Mapping):
        return errors
    if schema.get("type") != "object":
        errors.append(
            FieldError(f"{at}/type", "not_object", "an action's input is an object: type object")
        )
    for sub, where in _subschemas(schema, at):
        for keyword in _REFERENCES:
            if keyword in sub:
                errors.append(
                    FieldError(
                        f"{where}/{keyword.replace('~', '~0')}",
                        "not_allowed",
                        "an input schema stands on its own: write the schema out in place",
                    )
                )
        kinds = _json_types(sub) if "type" in sub else set()
        if "array" in kinds and "items" not in sub and "prefixItems" not in sub:
            errors.append(FieldError(where, "items", "say what the array holds (items)"))
        if "object" in kinds and not ("properties" in sub or "additionalProperties" in sub):
            errors.append(FieldError(where, "properties", "say what the object holds (properties)"))
    return errors


# ---- validation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """What an action may name besides its entity."""

    entities: Mapping[str, EntityDef]
    pipelines: Mapping[str, PipelineDef]
    processes: Mapping[str, ApprovalProcessDef]
    # The names of the action hooks registered at start-up (built-in and plugins').
    hooks: Collection[str]
    check_expression: ExpressionChecker | None = None


def validate_action(doc: Any, refs: References) -> list[FieldError]:
    """Every problem with an action document, each with a JSON Pointer: schema errors and the
    errors of meaning of every part the schema finds sound."""
    check = schema_check(ACTION, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = refs.entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    if check.sound("name") and len(document_key(doc)) > MAX_KEY_LENGTH:
        errors.append(
            FieldError(
                "/name",
                "too_long",
                f"the action is stored as {document_key(doc)!r}: the entity's name and the "
                f"action's together take at most {MAX_KEY_LENGTH - 1} characters",
            )
        )
    if "condition" in doc and check.sound("condition") and refs.check_expression is not None:
        site = ExpressionSite("/condition", doc["condition"], "boolean", needs_sql=True)
        errors.extend(refs.check_expression(entity.doc, site))
    if "unavailable_message" in doc and "condition" not in doc:
        errors.append(
            FieldError("/unavailable_message", "unused", "only an action with a condition shows it")
        )
    inputs: InputTypes = {}
    if "input_schema" in doc and check.sound("input_schema"):
        schema_problems = input_schema_errors(doc["input_schema"])
        errors.extend(schema_problems)
        inputs = input_types(doc["input_schema"]) if not schema_problems else {}
        if schema_problems:
            # Expressions reading the input can't be judged against a broken schema.
            return errors + _step_errors(doc, entity, refs, check, None)
    return errors + _step_errors(doc, entity, refs, check, inputs)


def _step_errors(
    doc: dict[str, Any],
    entity: EntityDef,
    refs: References,
    check: SchemaCheck,
    inputs: InputTypes | None,
) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, step in enumerate(check.items(doc, "steps")):
        if not check.sound("steps", i):
            continue
        at = pointer("steps", i)
        kind = step["type"]
        if kind == "set_fields":
            errors.extend(_values_errors(step["values"], at, entity, entity, refs, inputs))
        elif kind == "move_stage":
            errors.extend(_move_errors(step, at, entity, refs))
        elif kind == "create_record":
            target = refs.entities.get(step["entity"])
            if target is None:
                errors.append(
                    FieldError(f"{at}/entity", "unknown_entity", f"no entity {step['entity']!r}")
                )
            else:
                errors.extend(_values_errors(step["values"], at, entity, target, refs, inputs))
        elif kind == "submit_approval":
            process = refs.processes.get(step["process"])
            if process is None or process.entity != entity.name:
                errors.append(
                    FieldError(
                        f"{at}/process",
                        "unknown_process",
                        f"{entity.name} has no approval process {step['process']!r}",
                    )
                )
        elif step["name"] not in refs.hooks:
            known = ", ".join(sorted(refs.hooks)) or "none"
            errors.append(
                FieldError(
                    f"{at}/name",
                    "unknown_hook",
                    f"no action hook named {step['name']!r} is registered (registered: {known})",
                )
            )
    return errors


def settable(field: FieldDef | None) -> bool:
    """Whether an action may write the field: a stored field a client could write (`owner`
    too: assigning is an action)."""
    if field is None:
        return False
    if field.name == "owner":
        return True
    return (
        not field.system
        and field.stored
        and not field.read_only
        and field.type not in ("formula", "autonumber")
    )


def _values_errors(
    values: Mapping[str, str],
    at: str,
    entity: EntityDef,
    target: EntityDef,
    refs: References,
    inputs: InputTypes | None,
) -> list[FieldError]:
    """Each value names a field of `target` the action may write, and its expression (over the
    action's record, with its input) gives that field's type; `null` clears a field."""
    errors = []
    for name, expression in values.items():
        where = f"{at}/values{pointer(name)}"
        field = target.field(name)
        if field is None:
            errors.append(FieldError(where, "unknown_field", f"{target.name} has no {name!r}"))
            continue
        if not settable(field):
            errors.append(FieldError(where, "read_only", f"{target.name}.{name} can't be written"))
            continue
        if refs.check_expression is None or inputs is None:
            continue
        expect = None if expression.strip() == "null" else field.value_kind
        site = ExpressionSite(where, expression, expect, inputs=inputs)
        errors.extend(refs.check_expression(entity.doc, site))
    return errors


def _move_errors(
    step: Mapping[str, Any], at: str, entity: EntityDef, refs: References
) -> list[FieldError]:
    on_entity = sorted(
        (p for p in refs.pipelines.values() if p.entity == entity.name), key=lambda p: p.name
    )
    if "pipeline" in step:
        pipeline = next((p for p in on_entity if p.name == step["pipeline"]), None)
        if pipeline is None:
            return [
                FieldError(
                    f"{at}/pipeline",
                    "unknown_pipeline",
                    f"{entity.name} has no pipeline {step['pipeline']!r}",
                )
            ]
    elif len(on_entity) == 1:
        pipeline = on_entity[0]
    else:
        names = ", ".join(p.name for p in on_entity)
        message = (
            f"{entity.name} has no pipeline"
            if not on_entity
            else f"{entity.name} has several pipelines ({names}): name one in pipeline"
        )
        return [FieldError(f"{at}/pipeline", "pipeline", message)]
    if step["stage"] not in pipeline.keys:
        return [
            FieldError(
                f"{at}/stage",
                "unknown_stage",
                f"pipeline {pipeline.name} has no stage {step['stage']!r}; its stages: "
                f"{', '.join(pipeline.keys)}",
            )
        ]
    return []


class ActionDesigner(DocumentDesigner[ActionDef]):
    """Create, replace, delete and restore record actions; every change is a new version.
    `name` in the API is the document's key, `<entity>.<name>`."""

    def __init__(self, conn: Connection, author: str | None, refs: References) -> None:
        kind = DocumentKind(
            ACTION,
            "action",
            lambda doc: validate_action(doc, refs),
            ActionDef.from_doc,
            key=document_key,
        )
        super().__init__(conn, author, kind)

    def replace(self, name: str, doc: Any) -> ActionDef:
        # An action stays on its entity under its name: say which of the two was changed.
        if isinstance(doc, dict) and isinstance(doc.get("entity"), str):
            entity, _, short = name.partition(".")
            errors = []
            if doc.get("entity") != entity:
                errors.append(FieldError("/entity", "rename", f"must be {entity}"))
            if isinstance(doc.get("name"), str) and doc["name"] != short:
                errors.append(FieldError("/name", "rename", f"must be {short}"))
            if errors:
                self.current(name)  # an unknown action is a 404 before anything else
                raise Unprocessable("an action can't be renamed or moved", errors=errors)
        return super().replace(name, doc)
