"""Designing automations: the designer with the rule language's checks (expression types, SQL
for scheduled conditions, the fields a condition reads), and what an entity change made through
the entity API would break in the automations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.automations import (
    AUTOMATION,
    AutomationChecks,
    AutomationDef,
    AutomationDesigner,
    FieldReader,
    validate_automation,
)
from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import pointer
from metacrm.platform.errors import FieldError, RuleError
from metacrm.runtime.catalog import Catalog, build_catalog
from metacrm.runtime.rule_checks import expression_checker
from metacrm.runtime.rules import Scope, check, parse


def field_reader(catalog: Catalog) -> FieldReader:
    """Which fields of the record an expression reads (the first segment of each path)."""

    def reads(document: dict[str, Any], text: str) -> frozenset[str] | None:
        entity = EntityDef.from_doc(document)

        def resolve(name: str) -> EntityDef | None:
            return entity if name == entity.name else catalog.find(name)

        try:
            checked = check(parse(text), Scope(entity, resolve, allow_change_refs=True))
        except RuleError:
            return None
        names = frozenset(path[0] for path in checked.paths)
        if any((f := entity.field(n)) is not None and f.type == "formula" for n in names):
            return None  # a formula may read anything
        return names

    return reads


def automation_checks(catalog: Catalog) -> AutomationChecks:
    return AutomationChecks(catalog.entities, expression_checker(catalog), field_reader(catalog))


def automation_designer(
    conn: Connection, author: str | None, catalog: Catalog
) -> AutomationDesigner:
    return AutomationDesigner(conn, author, automation_checks(catalog))


def broken_automations(conn: Connection, before: Catalog) -> list[FieldError]:
    """What a metadata change made in this transaction (an entity's fields) breaks in the
    automations: each problem it adds, as a JSON Pointer into the automations' API
    (`/automations/<name>/…`). Problems an automation had before are not this change's."""
    automations = sorted(before.of_kind(AUTOMATION).values(), key=lambda a: a.name)
    if not automations:
        return []
    after = build_catalog(conn, -1)
    errors = []
    for automation in automations:
        had = _problems(automation, before)
        for e in validate_automation(dict(automation.doc), automation_checks(after)):
            if (e.field, e.code) not in had:
                at = pointer("automations", automation.name) + e.field
                errors.append(FieldError(at, e.code, f"automation {automation.name}: {e.message}"))
    return errors


def _problems(automation: AutomationDef, catalog: Catalog) -> set[tuple[str, str]]:
    found = validate_automation(dict(automation.doc), automation_checks(catalog))
    return {(e.field, e.code) for e in found}
