"""Checking rule-language expressions that live inside metadata (formulas, validation rules)
against the document being saved, for the metadata validator."""

from __future__ import annotations

from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import ExpressionChecker
from metacrm.platform.errors import FieldError, RuleError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, parse
from metacrm.runtime.rules.operators import BOOLEAN


def expression_checker(catalog: Catalog) -> ExpressionChecker:
    def check_expression(document: dict[str, Any], expression: str, where: str) -> list[FieldError]:
        entity = EntityDef.from_doc(document)
        # A formula must give its result type; a validation rule's condition, a boolean.
        expect = BOOLEAN
        if where.startswith("/fields/"):
            expect = document["fields"][int(where.split("/")[2])].get("result_type")

        def resolve(name: str) -> EntityDef | None:
            return entity if name == entity.name else catalog.find(name)

        allow_change = "/validation_rules/" in where
        try:
            check(
                parse(expression),
                Scope(entity=entity, resolve_entity=resolve, allow_change_refs=allow_change),
                expect=expect,
            )
        except RuleError as error:
            return [FieldError(where, "expression", error.detail)]
        return []

    return check_expression
