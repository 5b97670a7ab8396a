"""An action's input: checked against its input schema (every problem at its key path, a 422),
then given to the rule language with its dates, times and numbers as the language holds them.

Key paths are written with dots, as expressions read them: `reason`, `opportunity.amount`,
`lines.0.quantity`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from metacrm.metadata.actions import ActionDef
from metacrm.metadata.model import FieldDef
from metacrm.metadata.validate import nul_errors
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules.operators import DATE, DATETIME

# Dates and times in an input are read as a record's date and datetime fields read them.
_TEMPORAL_FIELDS = {
    DATE: FieldDef.from_doc({"name": "input", "type": "date"}),
    DATETIME: FieldDef.from_doc({"name": "input", "type": "datetime"}),
}
_FORMAT_TYPES = {"date": DATE, "date-time": DATETIME}


def _quoted(values: Iterable[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


# What a failed keyword says, from the schema's value for it (the validator's own messages
# repeat the value sent, however long).
_MESSAGES: dict[str, Callable[[Any], str]] = {
    "type": lambda v: f"must be of type {' or '.join(v) if isinstance(v, list) else v}",
    "enum": lambda v: f"must be one of: {_quoted(v)}",
    "const": lambda v: f"must be {_quoted([v])}",
    "minLength": lambda v: f"must be at least {v} characters long",
    "maxLength": lambda v: f"must be at most {v} characters long",
    "minimum": lambda v: f"must be at least {v}",
    "maximum": lambda v: f"must be at most {v}",
    "exclusiveMinimum": lambda v: f"must be more than {v}",
    "exclusiveMaximum": lambda v: f"must be less than {v}",
    "multipleOf": lambda v: f"must be a multiple of {v}",
    "minItems": lambda v: f"must have at least {v} items",
    "maxItems": lambda v: f"must have at most {v} items",
    "uniqueItems": lambda _v: "must not repeat an item",
    "pattern": lambda v: f"must match {v}",
    "format": lambda v: f"must be a {v}",
}


@cache
def _formats() -> FormatChecker:
    """The formats checked: jsonschema's, with date and date-time read exactly as a record's
    fields read them (and without optional packages)."""
    checker = FormatChecker()
    for name, kind in _FORMAT_TYPES.items():
        checker.checks(name, raises=ValueProblem)(_reads_as(kind))
    return checker


def _reads_as(kind: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, str):
            coerce(_TEMPORAL_FIELDS[kind], value)
        return True

    return check


def input_validator(catalog: Catalog, action: ActionDef) -> Draft202012Validator:
    """The action's input schema as a validator, built once per metadata snapshot."""
    return catalog.memo(
        ("action_input", action.key, action.version),
        lambda: Draft202012Validator(dict(action.input_schema or {}), format_checker=_formats()),
    )


def checked_input(catalog: Catalog, action: ActionDef, body: Any) -> dict[str, Any]:
    """The input sent, when the action takes it; otherwise a 422 with every problem."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise Unprocessable(
            "the input must be a JSON object", errors=[FieldError("", "type", "not an object")]
        )
    if action.input_schema is None:
        if body:
            raise Unprocessable(
                f"{action.name} takes no input",
                errors=[FieldError(k, "unknown_field", "this action takes no input") for k in body],
            )
        return {}
    errors = [FieldError(_dotted(e.field), e.code, e.message) for e in nul_errors(body) if e.field]
    for error in sorted(
        input_validator(catalog, action).iter_errors(body), key=lambda e: list(e.absolute_path)
    ):
        errors.extend(_problems(error))
    if errors:
        raise Unprocessable(f"the input of {action.name} is not valid", errors=errors)
    return body


def _problems(error: ValidationError) -> list[FieldError]:
    path = tuple(str(p) for p in error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [
            FieldError(_join(*path, key), "required", "is required")
            for key in error.validator_value
            if key not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties") or {}
        patterns = error.schema.get("patternProperties") or {}
        return [
            FieldError(_join(*path, key), "unknown_field", "is not an input of this action")
            for key in instance
            if key not in known and not _matches_any(patterns, key)
        ]
    message = _MESSAGES.get(str(error.validator))
    text = message(error.validator_value) if message else error.message
    if isinstance(error.cause, ValueProblem):
        text = error.cause.message  # a date or date-time, as a record's field would say
    return [FieldError(_join(*path), str(error.validator), text)]


def _matches_any(patterns: Iterable[str], key: str) -> bool:
    return any(re.search(p, key) for p in patterns)


def _join(*path: str) -> str:
    return ".".join(path)


def _dotted(json_pointer: str) -> str:
    steps = json_pointer.split("/")[1:]
    return _join(*(s.replace("~1", "/").replace("~0", "~") for s in steps))


def rule_values(action: ActionDef, body: Mapping[str, Any]) -> dict[str, Any]:
    """The checked input as the rule language reads it: dates and date-times (by their input
    schema's format) as date and datetime values; numbers and text as they are."""
    values: dict[str, Any] = copy.deepcopy(dict(body))
    for path, kind in action.input_types.items():
        if kind not in _TEMPORAL_FIELDS:
            continue
        parent: Any = values
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), str):
            parent[path[-1]] = coerce(_TEMPORAL_FIELDS[kind], parent[path[-1]])
    return values
