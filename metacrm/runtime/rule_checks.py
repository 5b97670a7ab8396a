"""Checking rule-language expressions that live inside metadata (formulas, defaults,
conditional field logic, validation rules) against the document being saved."""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import ExpressionChecker, ExpressionSite
from metacrm.platform.errors import FieldError, RuleError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, parse


def expression_checker(catalog: Catalog) -> ExpressionChecker:
    def check_expression(document: dict[str, Any], site: ExpressionSite) -> list[FieldError]:
        entity = EntityDef.from_doc(document)

        def resolve(name: str) -> EntityDef | None:
            return entity if name == entity.name else catalog.find(name)

        try:
            check(
                parse(site.expression),
                Scope(entity=entity, resolve_entity=resolve, allow_change_refs=site.sees_change),
                expect=site.expect,
            )
        except RuleError as error:
            return [FieldError(site.pointer, "expression", error.detail)]
        return []

    return check_expression
