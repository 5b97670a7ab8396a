"""Validation of entity documents: the JSON Schema first, then the meaning.

Both passes report every problem they find, each with a JSON Pointer; neither raises halfway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from metacrm.metadata.model import FieldDef
from metacrm.metadata.types import (
    FIELD_TYPES,
    RESERVED_ENTITY_NAMES,
    RESERVED_ENTITY_PREFIXES,
    RESERVED_FIELD_NAMES,
)
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import FieldError


@dataclass(frozen=True)
class ExpressionSite:
    """A rule-language expression inside a document: where it is and what it must give."""

    pointer: str
    expression: str
    # "boolean" for conditions, a value kind for formulas and default expressions.
    expect: str | None
    # Whether old.x and changed(x) make sense here (a change is in view).
    sees_change: bool = False
    # Whether it must also compile to SQL (permission and sharing rules filter in the database).
    needs_sql: bool = False


# Checks an expression in the context of an entity document; returns the problems. The runtime
# owns the rule language, so it hands this in (metadata never imports runtime).
ExpressionChecker = Callable[[dict[str, Any], ExpressionSite], list[FieldError]]

# Field options that hold conditions on the record as it would be saved.
CONDITION_OPTIONS = ("required_if", "visible_if", "read_only_if")

_AUTONUMBER_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|seq:\d{1,2})\}")
COMMON_FIELD_OPTIONS = frozenset(
    {
        "name",
        "type",
        "label",
        "help",
        "required",
        "unique",
        "indexed",
        "read_only",
        "default",
        "renamed_from",
        "default_expr",
        *CONDITION_OPTIONS,
    }
)


@cache
def _schema_validator(name: str) -> Draft202012Validator:
    folder = resources.files("metacrm.metadata") / "schemas"
    registry: Registry = Registry()
    for item in folder.iterdir():
        if item.name.endswith(".schema.json"):
            contents = json.loads(item.read_text("utf-8"))
            registry = registry.with_resource(item.name, Resource.from_contents(contents))
            registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    schema = json.loads((folder / f"{name}.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def pointer(*parts: str | int) -> str:
    return (
        "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""
    )


def schema_errors(kind: str, document: Any, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    errors = []
    for err in sorted(_schema_validator(kind).iter_errors(document), key=lambda e: list(e.path)):
        errors.append(FieldError(pointer(*prefix, *err.absolute_path), err.validator, err.message))
    return errors


def validate_field(
    doc: Any, at: tuple[str | int, ...], known_entities: Iterable[str]
) -> list[FieldError]:
    """Every problem with one field document; `at` is its place in the entity document."""
    errors = schema_errors("field", doc, at)
    if errors:
        return errors
    where = pointer(*at)
    name, type_name = doc["name"], doc["type"]
    if name in RESERVED_FIELD_NAMES:
        errors.append(FieldError(f"{where}/name", "reserved", f"{name!r} is a system field name"))
    field_type = FIELD_TYPES.get(type_name)
    if field_type is None:
        known = ", ".join(FIELD_TYPES)
        errors.append(
            FieldError(f"{where}/type", "unknown_type", f"unknown type {type_name!r}; use {known}")
        )
        return errors
    for option in sorted(set(doc) - COMMON_FIELD_OPTIONS - field_type.options):
        errors.append(
            FieldError(f"{where}/{option}", "not_allowed", f"{type_name} fields take no {option!r}")
        )
    field = FieldDef.from_doc(doc)
    if type_name in ("picklist", "multipicklist"):
        values = [o["value"] for o in doc.get("options", [])]
        if not values:
            errors.append(FieldError(f"{where}/options", "required", "a picklist needs options"))
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                errors.append(
                    FieldError(f"{where}/options/{i}/value", "duplicate", f"{value!r} is repeated")
                )
            seen.add(value)
    if type_name == "lookup":
        target = doc.get("target")
        if not target:
            errors.append(FieldError(f"{where}/target", "required", "a lookup needs a target"))
        elif target not in set(known_entities):
            errors.append(
                FieldError(f"{where}/target", "unknown_entity", f"no entity named {target!r}")
            )
    if type_name == "autonumber":
        errors.extend(_autonumber_errors(doc.get("pattern"), f"{where}/pattern"))
    if type_name == "formula":
        for option in ("expression", "result_type"):
            if option not in doc:
                errors.append(
                    FieldError(f"{where}/{option}", "required", f"a formula needs {option}")
                )
        for option in ("default", "unique", "required"):
            if option in doc:
                errors.append(
                    FieldError(f"{where}/{option}", "not_allowed", f"a formula takes no {option}")
                )
    if type_name == "decimal" and field.scale > field.precision:
        errors.append(FieldError(f"{where}/scale", "range", "scale must not exceed precision"))
    if type_name == "boolean" and doc.get("unique"):
        errors.append(FieldError(f"{where}/unique", "not_allowed", "a boolean can't be unique"))
    errors.extend(_bounds_errors(field, where))
    if "default" in doc and "default_expr" in doc:
        errors.append(
            FieldError(
                f"{where}/default_expr", "conflict", "give a default or a default_expr, not both"
            )
        )
    if type_name in ("formula", "autonumber"):
        for option in ("default_expr", *CONDITION_OPTIONS):
            if option in doc and option != "visible_if":
                errors.append(
                    FieldError(
                        f"{where}/{option}", "not_allowed", f"a {type_name} takes no {option}"
                    )
                )
    if "default" in doc and type_name not in ("formula", "autonumber"):
        try:
            coerce(field, doc["default"])
        except ValueProblem as problem:
            errors.append(FieldError(f"{where}/default", "default", f"default {problem.message}"))
    return errors


def _bounds_errors(field: FieldDef, where: str) -> list[FieldError]:
    errors = []
    if field.type not in ("integer", "decimal", "date", "datetime"):
        return errors
    bare = FieldDef.from_doc(
        {"name": field.name, "type": field.type, "precision": 38, "scale": field.scale}
    )
    parsed = {}
    for option in ("min", "max"):
        if option in field.doc:
            try:
                parsed[option] = coerce(bare, field.doc[option])
            except ValueProblem as problem:
                errors.append(
                    FieldError(f"{where}/{option}", option, f"{option} {problem.message}")
                )
    if len(parsed) == 2 and parsed["min"] > parsed["max"]:
        errors.append(FieldError(f"{where}/min", "range", "min must not exceed max"))
    return errors


def _autonumber_errors(pattern: str | None, where: str) -> list[FieldError]:
    if not pattern:
        return [FieldError(where, "required", "an autonumber needs a pattern such as OPP-{seq:5}")]
    tokens = re.findall(r"\{[^}]*\}", pattern)
    bad = [t for t in tokens if not _AUTONUMBER_TOKEN.fullmatch(t)]
    if bad:
        return [
            FieldError(
                where,
                "pattern",
                f"unknown token {bad[0]}; use {{YYYY}} {{YY}} {{MM}} {{DD}} and {{seq:N}}",
            )
        ]
    if sum(t.startswith("{seq") for t in tokens) != 1:
        return [FieldError(where, "pattern", "the pattern needs exactly one {seq:N}")]
    return []


def nul_errors(value: Any, at: str = "") -> list[FieldError]:
    """Every string in a document that holds a NUL character (no database keeps it)."""
    if isinstance(value, str):
        return (
            [FieldError(at, "format", "must not contain NUL characters")] if "\x00" in value else []
        )
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            step = str(key).replace("~", "~0").replace("/", "~1")
            if "\x00" in str(key):
                found.append(
                    FieldError(f"{at}/{step}", "format", "must not contain NUL characters")
                )
            found.extend(nul_errors(item, f"{at}/{step}"))
        return found
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in nul_errors(item, f"{at}/{i}")]
    return []


def expression_sites(doc: dict[str, Any]) -> list[ExpressionSite]:
    """Every rule-language expression an entity document holds."""
    sites = []
    for i, field in enumerate(doc.get("fields", [])):
        kind = FieldDef.from_doc(field).value_kind if field.get("type") in FIELD_TYPES else None
        if field.get("type") == "formula" and "expression" in field:
            sites.append(
                ExpressionSite(
                    f"/fields/{i}/expression", field["expression"], field.get("result_type")
                )
            )
        if "default_expr" in field:
            sites.append(ExpressionSite(f"/fields/{i}/default_expr", field["default_expr"], kind))
        for option in CONDITION_OPTIONS:
            if option in field:
                sites.append(ExpressionSite(f"/fields/{i}/{option}", field[option], "boolean"))
    for i, rule in enumerate(doc.get("validation_rules", [])):
        for key in ("condition", "when"):
            if key in rule:
                sites.append(
                    ExpressionSite(f"/validation_rules/{i}/{key}", rule[key], "boolean", True)
                )
    for i, rule in enumerate(doc.get("sharing_rules", [])):
        sites.append(
            ExpressionSite(
                f"/sharing_rules/{i}/condition", rule["condition"], "boolean", needs_sql=True
            )
        )
    return sites


def validate_entity(
    doc: Any,
    known_entities: Iterable[str],
    check_expression: ExpressionChecker | None = None,
) -> list[FieldError]:
    """Every problem with an entity document. `known_entities` are the lookup targets that exist
    besides the entity itself."""
    # Each field is checked on its own below, so every field's problems are reported once.
    errors = [e for e in schema_errors("entity", doc) if not e.field.startswith("/fields/")]
    errors.extend(nul_errors(doc))
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return errors
    name = doc["name"]
    targets = {*known_entities, name}
    if name in RESERVED_ENTITY_NAMES or name.startswith(RESERVED_ENTITY_PREFIXES):
        errors.append(FieldError("/name", "reserved", f"{name!r} is reserved"))
    fields = doc.get("fields") if isinstance(doc.get("fields"), list) else []
    seen: dict[str, int] = {}
    for i, field in enumerate(fields):
        errors.extend(validate_field(field, ("fields", i), targets))
        if isinstance(field, dict) and isinstance(field.get("name"), str):
            first = seen.get(field["name"])
            if first is not None:
                errors.append(
                    FieldError(
                        f"/fields/{i}/name",
                        "duplicate",
                        f"{field['name']!r} is defined twice (first at /fields/{first})",
                    )
                )
            seen.setdefault(field["name"], i)
    title = doc.get("title_field")
    if title is not None and title not in seen and title != "id":
        errors.append(FieldError("/title_field", "unknown_field", f"no field named {title!r}"))
    rules = doc.get("validation_rules") if isinstance(doc.get("validation_rules"), list) else []
    rule_names: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        if rule.get("name") in rule_names:
            errors.append(
                FieldError(f"/validation_rules/{i}/name", "duplicate", "rule name repeated")
            )
        rule_names.add(rule.get("name"))
        if "field" in rule and rule["field"] not in seen:
            errors.append(
                FieldError(
                    f"/validation_rules/{i}/field",
                    "unknown_field",
                    f"no field named {rule['field']!r}",
                )
            )
    rules = doc.get("sharing_rules") if isinstance(doc.get("sharing_rules"), list) else []
    sharing_names: set[Any] = set()
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and rule.get("name") in sharing_names:
            errors.append(FieldError(f"/sharing_rules/{i}/name", "duplicate", "rule name repeated"))
        sharing_names.add(rule.get("name") if isinstance(rule, dict) else None)
    if check_expression is not None and not errors:
        for site in expression_sites(doc):
            errors.extend(check_expression(doc, site))
    return errors
