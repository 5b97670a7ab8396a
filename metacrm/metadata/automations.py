"""Automation documents: behaviour that happens by itself on the records of an entity — steps
that run when a record is created or updated, or periodically over the records a condition
selects.

`validate_automation` finds every problem with a document, each with a JSON Pointer; the runtime
(`runtime/automations/`) runs them. Nothing here reads or writes record data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.documents import DocumentDesigner, DocumentKind
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

AUTOMATION = "automation"
CREATE, UPDATE = "create", "update"
SET_FIELDS, UPDATE_RELATED, CREATE_RECORD = "set_fields", "update_related", "create_record"
# Steps that act on other records after the write; a scheduled automation only sets fields.
AFTER_WRITE_STEPS = (UPDATE_RELATED, CREATE_RECORD)
# Event types the platform publishes itself: an automation's event may not pose as one.
RESERVED_EVENT_PREFIXES = ("record.", "stage.", "approval.", "action.")
# A plain text literal, without escapes: the one kind of value checked against picklist options.
_TEXT_LITERAL = re.compile(r"""^\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*$""")

# The fields of the record (by their first path segment) an expression reads, or None when that
# can't be told (it doesn't check, or reads a formula, which may read anything). The runtime owns
# the rule language and hands this in, as it hands in the expression checker.
FieldReader = Callable[[dict[str, Any], str], frozenset[str] | None]


@dataclass(frozen=True)
class AutomationDef:
    name: str
    entity: str
    doc: Mapping[str, Any]
    version: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], version: int = 0) -> AutomationDef:
        return cls(doc["name"], doc["entity"], doc, version)

    @property
    def label(self) -> Mapping[str, str]:
        return self.doc.get("label") or {"en": self.name}

    @property
    def title(self) -> str:
        return str(self.label.get("en") or self.name)

    @property
    def active(self) -> bool:
        return bool(self.doc.get("active", True))

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self.doc.get("on") or ())

    @property
    def every_minutes(self) -> int | None:
        return self.doc.get("every_minutes")

    @property
    def scheduled(self) -> bool:
        return self.every_minutes is not None

    @property
    def condition(self) -> str | None:
        return self.doc.get("condition")

    @property
    def steps(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.doc.get("steps") or ())

    @property
    def event(self) -> str | None:
        return self.doc.get("event")

    def runs_on(self, action: str) -> bool:
        return self.active and action in self.triggers

    @property
    def acts_after_write(self) -> bool:
        return any(step["type"] in AFTER_WRITE_STEPS for step in self.steps)


def settable(field: FieldDef | None) -> bool:
    """Whether an automation may write the field: a stored field a client may write (derived
    fields such as a pipeline's `stage_entered_at` are read-only), or the owner."""
    if field is None:
        return False
    if field.name == "owner":
        return True
    return field.stored and not field.read_only and field.type != "formula"


# ---- validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AutomationChecks:
    """What validating an automation needs besides the document: the entities it may name, and
    the rule language's checker and field reader (from the runtime)."""

    entities: Mapping[str, EntityDef]
    check_expression: ExpressionChecker | None = None
    reads: FieldReader | None = None


def validate_automation(doc: Any, checks: AutomationChecks) -> list[FieldError]:
    """Every problem with an automation document, each with a JSON Pointer: schema errors and
    the errors of meaning of every part the schema finds sound."""
    check = schema_check(AUTOMATION, doc)
    errors = check.errors + text_errors(doc)
    if not isinstance(doc, dict) or not check.sound("entity"):
        return errors
    entity = checks.entities.get(doc["entity"])
    if entity is None:
        return [
            *errors,
            FieldError("/entity", "unknown_entity", f"no entity named {doc['entity']!r}"),
        ]
    errors.extend(_trigger_errors(doc, check))
    # Given both, it is judged as a triggered one: "both" is the one error it needs.
    scheduled = "every_minutes" in doc and "on" not in doc
    condition_ok = "condition" in doc and check.sound("condition")
    if condition_ok:
        # A scheduled condition selects records in SQL, and sees no change.
        site = ExpressionSite(
            "/condition",
            doc["condition"],
            "boolean",
            sees_change=not scheduled,
            needs_sql=scheduled,
        )
        found = _expression_errors(checks, entity, site)
        condition_ok = not found
        errors.extend(found)
    steps = check.items(doc, "steps")
    set_names: set[str] = set()
    every_step_sound = len(steps) > 0
    for i, step in enumerate(steps):
        if not check.sound("steps", i):
            every_step_sound = False
            continue
        at = pointer("steps", i)
        kind = step["type"]
        if kind == SET_FIELDS:
            set_names.update(step["values"])
            errors.extend(
                _values_errors(checks, entity, entity, step, at, sees_change=not scheduled)
            )
        elif scheduled:
            every_step_sound = False
            errors.append(
                FieldError(
                    f"{at}/type",
                    "scheduled_step",
                    "a scheduled automation only sets fields of the records it selects",
                )
            )
        elif kind == UPDATE_RELATED:
            errors.extend(_update_related_errors(checks, entity, step, at))
        else:
            errors.extend(_create_record_errors(checks, entity, step, at))
    if scheduled and condition_ok and every_step_sound:
        errors.extend(_idempotence_errors(checks, entity, doc["condition"], set_names))
    return errors


def _trigger_errors(doc: dict[str, Any], check: SchemaCheck) -> list[FieldError]:
    """When it runs: on writes (`on`) or on a schedule (`every_minutes`), exactly one."""
    errors = []
    triggered, scheduled = "on" in doc, "every_minutes" in doc
    if triggered and scheduled:
        errors.append(
            FieldError(
                "/every_minutes",
                "both",
                "an automation runs on writes (on) or on a schedule (every_minutes), not both",
            )
        )
        scheduled = False  # judged as a triggered one from here on
    elif not triggered and not scheduled:
        errors.append(
            FieldError(
                "/on",
                "required",
                'say when it runs: "on": ["create", "update"], or "every_minutes": N',
            )
        )
    if scheduled and "condition" not in doc:
        errors.append(
            FieldError(
                "/condition",
                "required",
                "a scheduled automation needs a condition selecting the records it changes",
            )
        )
    if "event" in doc and check.sound("event"):
        if not scheduled:
            errors.append(
                FieldError(
                    "/event",
                    "unused",
                    "only a scheduled automation publishes an event of its own; the writes of a "
                    "triggered one publish record events",
                )
            )
        elif doc["event"].startswith(RESERVED_EVENT_PREFIXES):
            errors.append(
                FieldError(
                    "/event",
                    "reserved",
                    f"events starting {', '.join(RESERVED_EVENT_PREFIXES)} are the platform's; "
                    "name it after the entity, e.g. ticket.sla_breached",
                )
            )
    return errors


def _expression_errors(
    checks: AutomationChecks, entity: EntityDef, site: ExpressionSite
) -> list[FieldError]:
    if checks.check_expression is None:
        return []
    return checks.check_expression(entity.doc, site)


def _values_errors(
    checks: AutomationChecks,
    source: EntityDef,
    target: EntityDef,
    step: Mapping[str, Any],
    at: str,
    *,
    sees_change: bool,
) -> list[FieldError]:
    """Each value names a field of `target` an automation may write, and its expression (over
    the `source` record) gives a value of that field's kind."""
    errors = []
    for name, expression in step["values"].items():
        where = f"{at}/values/{pointer(name)[1:]}"
        field = target.field(name)
        if field is None:
            errors.append(
                FieldError(where, "unknown_field", f"{target.name} has no field {name!r}")
            )
            continue
        if not settable(field):
            errors.append(
                FieldError(
                    where,
                    "read_only",
                    f"{target.name}.{name} is read-only ({_why_read_only(field)}); "
                    "an automation can't set it",
                )
            )
            continue
        site = ExpressionSite(where, expression, field.value_kind, sees_change=sees_change)
        found = _expression_errors(checks, source, site)
        errors.extend(found or _option_errors(field, target, expression, where))
    return errors


def _why_read_only(field: FieldDef) -> str:
    if field.system:
        return "a system field"
    if field.type in ("formula", "autonumber"):
        return f"a{'n' if field.type == 'autonumber' else ''} {field.type}"
    return "derived, or marked read_only"


def _option_errors(
    field: FieldDef, target: EntityDef, expression: str, at: str
) -> list[FieldError]:
    """A picklist set to a plain text literal must be one of its options."""
    literal = _TEXT_LITERAL.match(expression)
    if field.type != "picklist" or literal is None:
        return []
    value = literal.group(1) if literal.group(1) is not None else literal.group(2)
    if value in field.options:
        return []
    return [
        FieldError(
            at,
            "unknown_option",
            f"{value!r} is not an option of {target.name}.{field.name}; "
            f"choose one of: {', '.join(field.options)}",
        )
    ]


def _update_related_errors(
    checks: AutomationChecks, entity: EntityDef, step: Mapping[str, Any], at: str
) -> list[FieldError]:
    lookup = entity.field(step["lookup"])
    if lookup is None or lookup.type != "lookup":
        return [
            FieldError(
                f"{at}/lookup",
                "not_lookup",
                f"{entity.name} has no lookup field {step['lookup']!r}",
            )
        ]
    target = entity if lookup.target == entity.name else checks.entities.get(lookup.target or "")
    if target is None:
        return [
            FieldError(
                f"{at}/lookup", "unknown_entity", f"it looks up {lookup.target!r}, not found"
            )
        ]
    return _values_errors(checks, entity, target, step, at, sees_change=True)


def _create_record_errors(
    checks: AutomationChecks, entity: EntityDef, step: Mapping[str, Any], at: str
) -> list[FieldError]:
    target = entity if step["entity"] == entity.name else checks.entities.get(step["entity"])
    if target is None:
        return [FieldError(f"{at}/entity", "unknown_entity", f"no entity named {step['entity']!r}")]
    return _values_errors(checks, entity, target, step, at, sees_change=True)


def _idempotence_errors(
    checks: AutomationChecks, entity: EntityDef, condition: str, set_names: set[str]
) -> list[FieldError]:
    """A scheduled automation must make its own condition false for the records it changes,
    or it would change them again on every run. What can be told before running: steps that
    set none of the fields the condition reads can never do it."""
    if checks.reads is None:
        return []
    read = checks.reads(entity.doc, condition)
    if read is None or read & set_names:
        return []
    fields = ", ".join(sorted(read)) or "no field"
    return [
        FieldError(
            "/condition",
            "not_idempotent",
            f"the condition reads {fields} and the steps set none of it, so the same records "
            "would match on every run; set a field the condition tests (e.g. a flag it "
            "excludes once set)",
        )
    ]


class AutomationDesigner(DocumentDesigner[AutomationDef]):
    """Create, replace, delete and restore automations; every change is a new version."""

    def __init__(self, conn: Connection, author: str | None, checks: AutomationChecks) -> None:
        kind = DocumentKind(
            AUTOMATION,
            "automation",
            lambda doc: validate_automation(doc, checks),
            AutomationDef.from_doc,
        )
        super().__init__(conn, author, kind)
