"""Checking rule-language expressions that live inside metadata (formulas, defaults,
conditional field logic, validation rules) against the document being saved."""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import ExpressionChecker, ExpressionSite
from metacrm.platform.errors import FieldError, RuleError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, parse, sql_compatible


def expression_checker(catalog: Catalog) -> ExpressionChecker:
    def check_expression(document: dict[str, Any], site: ExpressionSite) -> list[FieldError]:
        entity = EntityDef.from_doc(document)

        def resolve(name: str) -> EntityDef | None:
            return entity if name == entity.name else catalog.find(name)

        scope = Scope(
            entity=entity,
            resolve_entity=resolve,
            allow_change_refs=site.sees_change,
            inputs=site.inputs,
        )
        try:
            checked = check(parse(site.expression), scope, expect=site.expect)
        except RuleError as error:
            return [FieldError(site.pointer, "expression", error.detail)]
        reason = sql_compatible(checked, scope) if site.needs_sql else None
        if reason:
            return [FieldError(site.pointer, "not_sql", f"{reason}; this rule filters in SQL")]
        return []

    return check_expression
