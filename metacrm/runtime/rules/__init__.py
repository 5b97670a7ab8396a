"""The rule language: parse an expression, type-check it against an entity, compile it to SQL
or to a Python function.

`compile_filter` does all three for the `filter` parameter of record lists; `compiled` gives a
cached Python function for rules that run on one record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table

from metacrm.metadata.model import EntityDef
from metacrm.runtime.rules.check import Checked, Scope, check, sql_compatible
from metacrm.runtime.rules.compile_py import (
    Env,
    RuleEvaluationError,
    compile_python,
    compile_python_record,
    compiled,
    holds,
)
from metacrm.runtime.rules.compile_sql import SqlCompiler
from metacrm.runtime.rules.operators import BOOLEAN
from metacrm.runtime.rules.parse import parse

__all__ = [
    "Checked",
    "Env",
    "RuleEvaluationError",
    "Scope",
    "SqlCompiler",
    "check",
    "compile_filter",
    "compile_python",
    "compile_python_record",
    "compiled",
    "holds",
    "parse",
    "sql_compatible",
]


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
