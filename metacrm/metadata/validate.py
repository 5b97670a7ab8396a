"""Validation of entity documents: the JSON Schema first, then the meaning.

Both passes report every problem they find, each with a JSON Pointer; neither raises halfway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
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
from metacrm.platform.text import unencodable_text


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
    # A record action's input in scope (`input.<key>`): each key path with its value type, or
    # None for a value the rule language can't use. None: no input here.
    inputs: Mapping[tuple[str, ...], str | None] | None = dataclass_field(
        default=None, compare=False, hash=False
    )


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
def schema_files() -> dict[str, dict[str, Any]]:
    """Every JSON Schema of a metadata document, by file name (`entity.schema.json`)."""
    folder = resources.files("metacrm.metadata") / "schemas"
    return {
        item.name: json.loads(item.read_text("utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".schema.json")
    }


@cache
def _schema_validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry()
    for file_name, contents in schema_files().items():
        registry = registry.with_resource(file_name, Resource.from_contents(contents))
        registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    schema = schema_files()[f"{name}.schema.json"]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def pointer(*parts: str | int) -> str:
    return (
        "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""
    )


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class SchemaCheck:
    """A document's schema errors, and the parts of it they leave unfit for the checks of
    meaning. Those checks skip the broken parts and run on all the others, so one answer lists
    both kinds of problem."""

    errors: list[FieldError]
    broken: frozenset[Path]

    def sound(self, *path: str | int) -> bool:
        """Whether the part at `path` has no schema error in it, at it, or at a part holding it
        (a missing required member or an unknown member breaks only that member)."""
        size = len(path)
        return not any(b[:size] == path or path[: len(b)] == b for b in self.broken)

    def sound_members(self, document: Any, *at: str | int) -> dict[str, Any]:
        """The members of the object at `at` that are sound (none if it is not an object)."""
        if not isinstance(document, dict) or not self.sound_place(*at):
            return {}
        return {k: v for k, v in document.items() if self.sound(*at, k)}

    def sound_place(self, *path: str | int) -> bool:
        """Whether the part at `path` itself stands (it and the parts holding it are not broken),
        whatever is wrong inside it."""
        return not any(path[: len(b)] == b for b in self.broken)

    def items(self, parent: Any, *path: str | int) -> list[Any]:
        """The list at `path` (found as `path[-1]` in `parent`), or none if it doesn't stand."""
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        return value if isinstance(value, list) and self.sound_place(*path) else []

    def members(self, parent: Any, *path: str | int) -> dict[str, Any]:
        """The members that stand (valid keys) of the object at `path` in `parent`."""
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if not isinstance(value, dict) or not self.sound_place(*path):
            return {}
        return {k: v for k, v in value.items() if self.sound_place(*path, k)}


def schema_check(kind: str, document: Any, prefix: Path = ()) -> SchemaCheck:
    errors, broken = [], set()
    for err in sorted(_schema_validator(kind).iter_errors(document), key=lambda e: list(e.path)):
        place = (*prefix, *err.absolute_path)
        errors.append(FieldError(pointer(*place), err.validator, err.message))
        broken.update(_broken_parts(err, place))
    return SchemaCheck(errors, frozenset(broken))


def _broken_parts(err: ValidationError, place: Path) -> list[Path]:
    """The parts one schema error makes unusable: the members it is about when it says which
    (missing, unknown, a bad key), else the part it is reported at."""
    instance = err.instance
    if err.validator == "required" and isinstance(instance, dict):
        return [(*place, k) for k in err.validator_value if k not in instance]
    if err.validator == "additionalProperties" and isinstance(instance, dict):
        known = err.schema.get("properties") or {}
        patterns = err.schema.get("patternProperties") or {}
        return [
            (*place, k)
            for k in instance
            if k not in known and not any(re.search(p, k) for p in patterns)
        ]
    if "propertyNames" in err.schema_path and isinstance(instance, str):
        return [(*place, instance)]
    return [place]


def schema_errors(kind: str, document: Any, prefix: Path = ()) -> list[FieldError]:
    return schema_check(kind, document, prefix).errors


def validate_field(doc: Any, at: Path, known_entities: Iterable[str]) -> list[FieldError]:
    """Every problem with one field document; `at` is its place in the entity document. The
    checks of meaning run on the members the schema finds sound."""
    check = schema_check("field", doc, at)
    return check.errors + _field_meaning_errors(doc, at, known_entities, check)


# What the checks of one field option read of the others: a default is checked against the
# options, the length and the bounds, bounds and scale against the precision. When one of those
# is broken the check can't be made, and what it would say is left unsaid.
FIELD_CHECK_READS: dict[str, tuple[str, ...]] = {
    "default": ("options", "max_length", "min", "max", "precision", "scale"),
    "min": ("precision", "scale"),
    "max": ("precision", "scale"),
    "scale": ("precision",),
}


def _field_meaning_errors(
    raw: Any, at: Path, known_entities: Iterable[str], check: SchemaCheck
) -> list[FieldError]:
    doc = check.sound_members(raw, *at)
    if "name" not in doc or "type" not in doc:
        return []
    # Options whose only fault is in their labels or colours still give their values.
    options = _option_values(raw, at, check)
    if options is not None:
        doc["options"] = options
    left_out = {k for k in raw if k not in doc}
    left_out |= {k for k, reads in FIELD_CHECK_READS.items() if left_out.intersection(reads)}
    unsaid = [pointer(*at, k) for k in left_out]
    return [
        e
        for e in _field_errors(doc, pointer(*at), known_entities)
        if not any(e.field == p or e.field.startswith(f"{p}/") for p in unsaid)
    ]


def _option_values(raw: dict[str, Any], at: Path, check: SchemaCheck) -> list[Any] | None:
    options = raw.get("options")
    if not isinstance(options, list) or not check.sound_place(*at, "options"):
        return None
    if not all(check.sound(*at, "options", i, "value") for i in range(len(options))):
        return None
    return [{"value": o["value"]} for o in options]


def _field_errors(
    doc: dict[str, Any], where: str, known_entities: Iterable[str]
) -> list[FieldError]:
    errors: list[FieldError] = []
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
        takers = [t.name for t in FIELD_TYPES.values() if option in t.options]
        only = f" (only {', '.join(takers)} fields do)" if takers else ""
        errors.append(
            FieldError(
                f"{where}/{option}", "not_allowed", f"{type_name} fields take no {option!r}{only}"
            )
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
    errors: list[FieldError] = []
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


def text_errors(document: Any) -> list[FieldError]:
    """Text in a document that no database keeps or no answer can carry: lone surrogates, then
    NUL characters (looked for only in a document free of the first, whose pointers would
    repeat the bad text)."""
    return list(unencodable_text(document)) or nul_errors(document)


def expression_sites(doc: dict[str, Any], check: SchemaCheck | None = None) -> list[ExpressionSite]:
    """Every rule-language expression an entity document holds (given a schema check, every
    one the schema finds sound; without, the document is taken as valid)."""
    sound = check.sound if check is not None else SchemaCheck([], frozenset()).sound
    sites = []
    for i, field in enumerate(_items(doc, "fields")):
        if not sound("fields", i, "type"):
            continue
        kind = FieldDef.from_doc(field).value_kind if field.get("type") in FIELD_TYPES else None
        if (
            field.get("type") == "formula"
            and "expression" in field
            and sound("fields", i, "expression")
            and sound("fields", i, "result_type")
        ):
            sites.append(
                ExpressionSite(
                    f"/fields/{i}/expression", field["expression"], field.get("result_type")
                )
            )
        if "default_expr" in field and sound("fields", i, "default_expr"):
            sites.append(ExpressionSite(f"/fields/{i}/default_expr", field["default_expr"], kind))
        for option in CONDITION_OPTIONS:
            if option in field and sound("fields", i, option):
                sites.append(ExpressionSite(f"/fields/{i}/{option}", field[option], "boolean"))
    for i, rule in enumerate(_items(doc, "validation_rules")):
        for key in ("condition", "when"):
            if sound("validation_rules", i, key) and isinstance(rule, dict) and key in rule:
                sites.append(
                    ExpressionSite(f"/validation_rules/{i}/{key}", rule[key], "boolean", True)
                )
    for i, rule in enumerate(_items(doc, "sharing_rules")):
        if sound("sharing_rules", i, "condition") and isinstance(rule, dict):
            sites.append(
                ExpressionSite(
                    f"/sharing_rules/{i}/condition", rule["condition"], "boolean", needs_sql=True
                )
            )
    return sites


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    found = doc.get(key)
    return found if isinstance(found, list) else []


def validate_entity(
    doc: Any,
    known_entities: Iterable[str],
    check_expression: ExpressionChecker | None = None,
    validators: Collection[str] | None = None,
) -> list[FieldError]:
    """Every problem with an entity document. `known_entities` are the lookup targets that exist
    besides the entity itself; `validators` the names of the validators registered in the
    server, which validation rules' hooks must name (None: not known here, not checked). Schema
    errors and errors of meaning come together: the checks of meaning skip only the parts the
    schema finds broken."""
    check = schema_check("entity", doc)
    # Each field is checked on its own below, so every field's problems are reported once.
    errors = [e for e in check.errors if not e.field.startswith("/fields/")]
    errors.extend(text_errors(doc))
    if not isinstance(doc, dict):
        return errors
    name = doc.get("name") if check.sound("name") else None
    targets = {*known_entities, name} if name else set(known_entities)
    if name and (name in RESERVED_ENTITY_NAMES or name.startswith(RESERVED_ENTITY_PREFIXES)):
        errors.append(FieldError("/name", "reserved", f"{name!r} is reserved"))
    fields = _items(doc, "fields")
    # Every name a field was given, valid or not: "no field named x" must not be said of one.
    seen: dict[str, int] = {}
    field_errors: list[FieldError] = []
    for i, field in enumerate(fields):
        field_errors.extend(validate_field(field, ("fields", i), targets))
        if isinstance(field, dict) and isinstance(field.get("name"), str):
            first = seen.get(field["name"])
            if first is not None:
                field_errors.append(
                    FieldError(
                        f"/fields/{i}/name",
                        "duplicate",
                        f"{field['name']!r} is defined twice (first at /fields/{first})",
                    )
                )
            seen.setdefault(field["name"], i)
    errors.extend(field_errors)
    title = doc.get("title_field")
    if check.sound("title_field") and title is not None and title not in seen and title != "id":
        errors.append(FieldError("/title_field", "unknown_field", f"no field named {title!r}"))
    errors.extend(_rule_errors(doc, check, seen))
    errors.extend(_hook_errors(doc, check, validators))
    if (
        check_expression is not None
        and name
        and check.sound_place("fields")
        and not any(_spoils_scope(e) for e in field_errors)
    ):
        for site in expression_sites(doc, check):
            errors.extend(check_expression(doc, site))
    return errors


# What the rule language reads of a field. Expressions are checked only when no field has a
# problem here, so that an error reported in an expression is the expression's own.
SCOPE_MEMBERS = frozenset({"name", "type", "result_type", "target"})


def _spoils_scope(error: FieldError) -> bool:
    steps = error.field.split("/")  # "", "fields", index, member, ...
    return len(steps) <= 3 or steps[3] in SCOPE_MEMBERS


def _rule_errors(
    doc: dict[str, Any], check: SchemaCheck, fields: Mapping[str, int]
) -> list[FieldError]:
    """Repeated rule names, and validation rules that name no field."""
    errors = []
    for key in ("validation_rules", "sharing_rules"):
        rules = _items(doc, key)
        names: set[str] = set()
        for i, rule in enumerate(rules):
            if not check.sound(key, i, "name") or not isinstance(rule, dict):
                continue
            if rule["name"] in names:
                errors.append(FieldError(f"/{key}/{i}/name", "duplicate", "rule name repeated"))
            names.add(rule["name"])
        if key != "validation_rules":
            continue
        for i, rule in enumerate(rules):
            if (
                check.sound(key, i, "field")
                and isinstance(rule, dict)
                and "field" in rule
                and rule["field"] not in fields
            ):
                errors.append(
                    FieldError(
                        f"/{key}/{i}/field", "unknown_field", f"no field named {rule['field']!r}"
                    )
                )
    return errors


def _hook_errors(
    doc: dict[str, Any], check: SchemaCheck, validators: Collection[str] | None
) -> list[FieldError]:
    """Validation rules with a hook: it stands instead of a condition, and (when the server's
    validators are known) names one of them."""
    errors = []
    for i, rule in enumerate(_items(doc, "validation_rules")):
        if (
            not isinstance(rule, dict)
            or "hook" not in rule
            or not check.sound_place("validation_rules", i)
        ):
            continue
        if "condition" in rule:
            errors.append(
                FieldError(
                    f"/validation_rules/{i}/condition",
                    "exclusive",
                    "a rule has a condition or a hook, not both: move the condition into the "
                    "validator, or make it the rule's `when`",
                )
            )
        if (
            validators is not None
            and check.sound("validation_rules", i, "hook")
            and rule["hook"] not in validators
        ):
            known = ", ".join(sorted(validators)) or "none"
            errors.append(
                FieldError(
                    f"/validation_rules/{i}/hook",
                    "unknown_validator",
                    f"no validator named {rule['hook']!r} is registered in this server "
                    f"(registered: {known}); is the plugin that provides it installed?",
                )
            )
    return errors
