"""The rule language: parse an expression, type-check it against an entity, compile it to SQL.

`compile_filter` does all three for the `filter` parameter of record lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table

from metacrm.metadata.model import EntityDef
from metacrm.runtime.rules.check import Checked, Scope, check
from metacrm.runtime.rules.compile_sql import SqlCompiler
from metacrm.runtime.rules.operators import BOOLEAN
from metacrm.runtime.rules.parse import parse

__all__ = ["Checked", "Scope", "SqlCompiler", "check", "compile_filter", "parse"]


def compile_filter(
    text: str,
    entity: EntityDef,
    table: Table,
    table_for: Callable[[str], Table],
    resolve_entity: Callable[[str], EntityDef | None],
    user: Mapping[str, Any],
    now: datetime,
) -> tuple[ColumnElement[bool], SqlCompiler]:
    """A filter expression as a SQL condition, and the compiler that holds the joins it needs."""
    checked = check(parse(text), Scope(entity, resolve_entity), expect=BOOLEAN)
    compiler = SqlCompiler(entity, table, table_for, user, now, resolve_entity=resolve_entity)
    return compiler.compile(checked), compiler
