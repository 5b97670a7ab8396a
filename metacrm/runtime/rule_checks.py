"""Checking rule-language expressions that live inside metadata (formulas, defaults,
conditional field logic, validation rules) against the document being saved."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection

from metacrm.metadata import store
from metacrm.metadata.model import EntityDef
from metacrm.metadata.validate import ExpressionChecker, ExpressionSite
from metacrm.platform.errors import FieldError, RuleError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rules import Scope, check, parse, sql_compatible


class EntityFinder(Protocol):
    def find(self, name: str) -> EntityDef | None: ...


class StoredEntities:
    """Entities as the store holds them now, read on each use: what a package import checks
    expressions against, since its entities are created and changed one after the other and
    a rule may read through a lookup to an entity the same import has just created."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(self, name: str) -> EntityDef | None:
        stored = store.get(self.conn, store.ENTITY, name)
        return EntityDef.from_doc(stored.document, stored.version) if stored else None


def expression_checker(catalog: Catalog | EntityFinder) -> ExpressionChecker:
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
