"""Turns a checked rule into a SQLAlchemy Core condition, the same on SQLite and PostgreSQL.

Values are bound parameters; paths through lookups become LEFT OUTER JOINs on aliased tables.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import reduce
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    FromClause,
    Numeric,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    not_,
    null,
    or_,
    true,
    type_coerce,
)
from sqlalchemy.types import TypeEngine

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.platform.errors import RuleError
from metacrm.runtime.rules import ast
from metacrm.runtime.rules.check import Checked, Scope, check
from metacrm.runtime.rules.operators import (
    BOOLEAN,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LIST,
    NULL,
    TEXT,
)
from metacrm.runtime.rules.parse import parse
from metacrm.runtime.rules.sql_dialect import (
    AddDaysToDate,
    AddDaysToDatetime,
    AddHours,
    DateOf,
    DateStart,
    DayOf,
    DaysBetween,
    LargestOf,
    LowerCase,
    MonthOf,
    OrderedText,
    RoundNumber,
    SmallestOf,
    ToDecimal,
    UpperCase,
    YearOf,
)

LIKE_ESCAPE = "\\"
_ALIAS_NAME_LIMIT = 50

SQL_TYPES: dict[str, Callable[[], TypeEngine[Any]]] = {
    TEXT: String,
    INTEGER: BigInteger,
    DECIMAL: Numeric,
    BOOLEAN: Boolean,
    DATE: Date,
    DATETIME: lambda: DateTime(timezone=True),
    LIST: String,
    NULL: String,
}

_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH: dict[str, Callable[[Any, Any], ColumnElement[Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
# `contains`, `startswith`, `endswith` as (prefix, suffix) wildcards around the value.
_LIKE_SHAPES = {"contains": ("%", "%"), "startswith": ("", "%"), "endswith": ("%", "")}
# The empty value `is blank` also matches, by type; other types are blank only when null.
_EMPTY = {TEXT: "", LIST: "[]"}


def escape_like(text: str) -> str:
    """Make % and _ (and the escape character) match themselves in a LIKE pattern."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def _bind(value: Any, vtype: str) -> ColumnElement[Any]:
    return bindparam(None, value=value, type_=SQL_TYPES[vtype](), unique=True)


def _typed_null(vtype: str) -> ColumnElement[Any]:
    return cast(null(), SQL_TYPES[vtype]())


def _always_null(node: ast.Node) -> bool:
    # The null literal, or anything the checker found can only be null (coalesce(null, null)).
    return node.vtype == NULL or (isinstance(node, ast.Literal) and node.value is None)


class SqlCompiler:
    """Compiles expressions over one entity's table; collects the joins their paths need."""

    def __init__(
        self,
        entity: EntityDef,
        table: Table,
        table_for: Callable[[str], Table],
        user: Mapping[str, Any],
        now: datetime,
        *,
        resolve_entity: Callable[[str], EntityDef | None],
        join_guard: Callable[[EntityDef, FromClause], ColumnElement[bool] | None] | None = None,
    ) -> None:
        self.entity = entity
        # The caller's read permission on looked-up records: one they may not read joins as if
        # it were absent, so `account.owner == ...` can't reveal an unreadable account.
        self.join_guard = join_guard
        self.table = table
        self.table_for = table_for
        self.resolve_entity = resolve_entity
        self.user = dict(user)
        # Stored datetimes are UTC; a naive `now` is taken to be UTC already.
        self.now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        self.today = now.date()
        self._joins: dict[tuple[str, ...], tuple[FromClause, ColumnElement[bool]]] = {}
        self._conditions: list[ColumnElement[bool]] = []
        self._formulas_in_progress: set[str] = set()

    # --- public ------------------------------------------------------------------------------

    def compile(self, checked: Checked) -> ColumnElement[bool]:
        condition = self._sql(checked.node)
        self._conditions.append(condition)
        return condition

    def column_for(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        """The column a field path reads, joining lookups on the way (also for sorting)."""
        entity = self.entity
        joined: FromClause = self.table
        for index, name in enumerate(path):
            found = entity.field(name)
            if found is None:
                raise RuleError(f"unknown field '{'.'.join(path[: index + 1])}'")
            if index == len(path) - 1:
                if found.type == "formula" and index == 0:
                    return self._formula(found)
                if not found.stored or name not in joined.c:
                    raise RuleError(f"'{'.'.join(path)}' of a looked-up record can't be queried")
                return joined.c[name]
            target = self.resolve_entity(found.target) if found.target else None
            if found.type != "lookup" or target is None:
                raise RuleError(f"'{'.'.join(path[: index + 1])}' is not a lookup")
            joined = self._join(path[: index + 1], joined, name, target.name)
            entity = target
        raise RuleError("an empty field path")

    def value(self, checked: Checked) -> ColumnElement[Any]:
        """Any checked expression as a SQL value (formulas), without adding a condition."""
        return self._sql(checked.node)

    def _formula(self, field: FieldDef) -> ColumnElement[Any]:
        """A formula field of the base entity, compiled inline from its expression."""
        if field.name in self._formulas_in_progress:
            raise RuleError(f"formula {field.name!r} refers to itself")
        self._formulas_in_progress.add(field.name)
        try:
            return self._formula_sql(field)
        finally:
            self._formulas_in_progress.discard(field.name)

    def _formula_sql(self, field: FieldDef) -> ColumnElement[Any]:
        checked = check(
            parse(field.expression or ""),
            Scope(self.entity, self.resolve_entity),
            expect=field.doc.get("result_type"),
        )
        return self._sql(checked.node)

    def joins(self) -> list[tuple[FromClause, ColumnElement[bool]]]:
        """LEFT OUTER JOINs the compiled paths need, in order: (aliased table, on-clause)."""
        return list(self._joins.values())

    def from_clause(self) -> FromClause:
        joined: FromClause = self.table
        for alias, on in self._joins.values():
            joined = joined.outerjoin(alias, on)
        return joined

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        """Select from the base table joined as needed, where every compiled condition holds."""
        stmt = stmt.select_from(self.from_clause())
        return stmt.where(*self._conditions) if self._conditions else stmt

    # --- nodes -------------------------------------------------------------------------------

    def _join(
        self, prefix: tuple[str, ...], parent: FromClause, column: str, target: str
    ) -> FromClause:
        known = self._joins.get(prefix)
        if known is not None:
            return known[0]
        name = f"j{len(self._joins) + 1}_{'_'.join(prefix)}"[:_ALIAS_NAME_LIMIT]
        alias = self.table_for(target).alias(name)
        on = parent.c[column] == alias.c.id
        target_entity = self.resolve_entity(target)
        if self.join_guard is not None and target_entity is not None:
            readable = self.join_guard(target_entity, alias)
            if readable is not None:
                on = and_(on, readable)
        self._joins[prefix] = (alias, on)
        return alias

    def _sql(self, node: ast.Node) -> ColumnElement[Any]:
        if node.vtype is None:
            raise RuleError("the expression must be checked before it is compiled", node.pos)
        method = getattr(self, f"_sql_{type(node).__name__}", None)
        if method is None:
            raise RuleError(f"'{type(node).__name__}' cannot be used in a query", node.pos)
        return method(node)

    def _sql_Literal(self, node: ast.Literal) -> ColumnElement[Any]:
        if node.value is None:
            return null()
        return _bind(node.value, node.kind)

    def _sql_FieldRef(self, node: ast.FieldRef) -> ColumnElement[Any]:
        return self.column_for(node.path)

    def _sql_OldRef(self, node: ast.OldRef) -> ColumnElement[Any]:
        raise RuleError("old values are not available in a query", node.pos)

    def _sql_UserRef(self, node: ast.UserRef) -> ColumnElement[Any]:
        return _bind(self.user.get(node.attr), TEXT)

    def _sql_Now(self, node: ast.Now) -> ColumnElement[Any]:
        return _bind(self.now, DATETIME)

    def _sql_Today(self, node: ast.Today) -> ColumnElement[Any]:
        return _bind(self.today, DATE)

    def _sql_Neg(self, node: ast.Neg) -> ColumnElement[Any]:
        if _always_null(node.operand):
            return _typed_null(node.vtype or NULL)
        return -self._sql(node.operand)

    def _sql_Not(self, node: ast.Not) -> ColumnElement[Any]:
        return not_(self._condition(node.operand))

    def _sql_BoolOp(self, node: ast.BoolOp) -> ColumnElement[Any]:
        combine = and_ if node.op == "and" else or_
        return combine(*(self._condition(o) for o in node.operands))

    def _condition(self, node: ast.Node) -> ColumnElement[Any]:
        return _typed_null(BOOLEAN) if _always_null(node) else self._sql(node)

    def _sql_Arith(self, node: ast.Arith) -> ColumnElement[Any]:
        if _always_null(node.left) or _always_null(node.right):
            return _typed_null(node.vtype or NULL)
        left, right = self._sql(node.left), self._sql(node.right)
        if node.op == "/":
            # True division, and null rather than an error when dividing by zero.
            return ToDecimal(left) / func.nullif(right, 0, type_=Numeric())
        return _ARITH[node.op](left, right)

    def _sql_IsCheck(self, node: ast.IsCheck) -> ColumnElement[Any]:
        operand = self._sql(node.operand)
        empty = _EMPTY.get(node.operand.vtype or NULL) if node.test == "blank" else None
        if empty is None:
            return operand.is_not(None) if node.negated else operand.is_(None)
        if node.negated:
            return and_(operand.is_not(None), operand != _bind(empty, TEXT))
        return or_(operand.is_(None), operand == _bind(empty, TEXT))

    def _sql_Compare(self, node: ast.Compare) -> ColumnElement[Any]:
        if node.op in ("in", "not in"):
            return self._membership(node)
        if _always_null(node.left) or _always_null(node.right):
            # SQL's answer: a comparison with null is unknown, never true.
            return _typed_null(BOOLEAN)
        if node.op in _LIKE_SHAPES:
            return self._like(node)
        left, right = self._temporal_pair(node.left, node.right)
        if node.op not in ("==", "!=") and node.left.vtype == TEXT:
            left, right = OrderedText(left), OrderedText(right)
        return _COMPARE[node.op](left, right)

    def _temporal_pair(
        self, left_node: ast.Node, right_node: ast.Node
    ) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """Both sides as SQL, a date widened to a datetime when the other side is one."""
        left, right = self._sql(left_node), self._sql(right_node)
        if left_node.vtype == DATE and right_node.vtype == DATETIME:
            left = DateStart(left)
        elif left_node.vtype == DATETIME and right_node.vtype == DATE:
            right = DateStart(right)
        return left, right

    def _membership(self, node: ast.Compare) -> ColumnElement[Any]:
        assert isinstance(node.right, ast.ListLit)
        items = node.right.items
        if not items:
            return false() if node.op == "in" else true()
        if _always_null(node.left):
            return _typed_null(BOOLEAN)
        widen = node.left.vtype == DATE and any(i.vtype == DATETIME for i in items)
        left = self._sql(node.left)
        if widen:
            left = DateStart(left)
        values: list[ColumnElement[Any]] = []
        for item in items:
            if _always_null(item):
                values.append(null())
                continue
            value = self._sql(item)
            if (widen or node.left.vtype == DATETIME) and item.vtype == DATE:
                value = DateStart(value)
            values.append(value)
        return left.in_(values) if node.op == "in" else left.not_in(values)

    def _like(self, node: ast.Compare) -> ColumnElement[Any]:
        left = self._sql(node.left)
        prefix, suffix = _LIKE_SHAPES[node.op]
        as_list = node.left.vtype == LIST
        known = self._known_text(node.right)
        if isinstance(known, str):
            encodings = _json_encodings(known) if as_list else [known]
            patterns = [prefix + escape_like(text) + suffix for text in encodings]
            return or_(*(left.like(_bind(p, TEXT), escape=LIKE_ESCAPE) for p in patterns))
        value = self._sql(node.right)
        if as_list:
            value = _sql_json_string(value)
        pattern = _sql_escape_like(value)
        if prefix:
            pattern = _bind(prefix, TEXT).concat(pattern)
        if suffix:
            pattern = pattern.concat(_bind(suffix, TEXT))
        return left.like(pattern, escape=LIKE_ESCAPE)

    def _known_text(self, node: ast.Node) -> str | None:
        """The text a node stands for when it is known before the query runs."""
        if isinstance(node, ast.Literal) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.UserRef):
            value = self.user.get(node.attr)
            return value if isinstance(value, str) else None
        return None

    # --- functions ---------------------------------------------------------------------------

    def _sql_Call(self, node: ast.Call) -> ColumnElement[Any]:
        build = _FUNCTIONS.get(node.name)
        if build is None:
            raise RuleError(f"{node.name}() cannot be used in a query", node.pos)
        if node.name not in _NULL_TOLERANT and any(_always_null(a) for a in node.args):
            return _typed_null(node.vtype or NULL)
        return build(self, node)

    def _fn_simple(self, node: ast.Call) -> ColumnElement[Any]:
        args = [self._sql(a) for a in node.args]
        sql_name = {"len": "length"}.get(node.name, node.name)
        return getattr(func, sql_name)(*args, type_=SQL_TYPES[node.vtype or NULL]())

    def _fn_case(self, node: ast.Call) -> ColumnElement[Any]:
        mapped = LowerCase if node.name == "lower" else UpperCase
        return mapped(self._sql(node.args[0]))

    def _fn_concat(self, node: ast.Call) -> ColumnElement[Any]:
        # Null arguments count as empty text, so concat(first, " ", last) always gives text.
        parts = []
        for arg in node.args:
            if _always_null(arg):
                continue
            sql = self._sql(arg)
            if arg.vtype != TEXT:
                sql = cast(sql, String())
            parts.append(func.coalesce(sql, _bind("", TEXT), type_=String()))
        if not parts:
            return _bind("", TEXT)
        return reduce(lambda a, b: a.concat(b), parts)

    def _fn_coalesce(self, node: ast.Call) -> ColumnElement[Any]:
        # PostgreSQL types an untyped null argument as text, which then can't meet a boolean.
        typed = node.vtype not in (None, NULL)
        args = [
            _typed_null(node.vtype or NULL) if typed and _always_null(a) else self._sql(a)
            for a in node.args
        ]
        return func.coalesce(*args, type_=SQL_TYPES[node.vtype or NULL]())

    def _fn_round(self, node: ast.Call) -> ColumnElement[Any]:
        number = self._sql(node.args[0])
        places = self._sql(node.args[1]) if len(node.args) > 1 else _bind(0, INTEGER)
        rounded = RoundNumber(number, places)
        return cast(rounded, BigInteger()) if node.vtype == INTEGER else rounded

    def _fn_today(self, node: ast.Call) -> ColumnElement[Any]:
        return _bind(self.today, DATE)

    def _fn_now(self, node: ast.Call) -> ColumnElement[Any]:
        return _bind(self.now, DATETIME)

    def _fn_date(self, node: ast.Call) -> ColumnElement[Any]:
        (arg,) = node.args
        sql = self._sql(arg)
        return sql if arg.vtype == DATE else DateOf(sql)

    def _fn_date_part(self, node: ast.Call) -> ColumnElement[Any]:
        part = {"year": YearOf, "month": MonthOf, "day": DayOf}[node.name]
        return part(self._sql(node.args[0]))

    def _fn_if(self, node: ast.Call) -> ColumnElement[Any]:
        # A condition that is null takes the second branch, as in Python.
        condition, then, otherwise = node.args
        if _always_null(condition):
            return self._value_or_typed_null(otherwise, node.vtype)
        return case(
            (self._sql(condition), self._value_or_typed_null(then, node.vtype)),
            else_=self._value_or_typed_null(otherwise, node.vtype),
        )

    def _value_or_typed_null(self, node: ast.Node, vtype: str | None) -> ColumnElement[Any]:
        return _typed_null(vtype or NULL) if _always_null(node) else self._sql(node)

    def _fn_extreme(self, node: ast.Call) -> ColumnElement[Any]:
        args = [self._sql(a) for a in node.args]
        if node.vtype == TEXT:
            args = [OrderedText(a) for a in args]
        extreme = SmallestOf if node.name == "min" else LargestOf
        return type_coerce(extreme(*args), SQL_TYPES[node.vtype or NULL]())

    def _fn_datetime(self, node: ast.Call) -> ColumnElement[Any]:
        (arg,) = node.args
        sql = self._sql(arg)
        return sql if arg.vtype == DATETIME else DateStart(sql)

    def _fn_days_between(self, node: ast.Call) -> ColumnElement[Any]:
        first, second = (self._date_of(a) for a in node.args)
        return DaysBetween(first, second)

    def _date_of(self, node: ast.Node) -> ColumnElement[Any]:
        sql = self._sql(node)
        return sql if node.vtype == DATE else DateOf(sql)

    def _fn_add_days(self, node: ast.Call) -> ColumnElement[Any]:
        value, days = (self._sql(a) for a in node.args)
        shift = AddDaysToDatetime if node.vtype == DATETIME else AddDaysToDate
        return shift(value, days)

    def _fn_add_hours(self, node: ast.Call) -> ColumnElement[Any]:
        value, hours = node.args
        start = self._sql(value)
        return AddHours(start if value.vtype == DATETIME else DateStart(start), self._sql(hours))


def _json_encodings(value: str) -> list[str]:
    """How a list item may be stored inside the JSON array text (ASCII-escaped or not)."""
    encodings = [json.dumps(value, ensure_ascii=False), json.dumps(value)]
    return list(dict.fromkeys(encodings))


def _sql_json_string(value: ColumnElement[Any]) -> ColumnElement[Any]:
    escaped = func.replace(func.replace(value, "\\", "\\\\"), '"', '\\"')
    return _bind('"', TEXT).concat(escaped).concat(_bind('"', TEXT))


def _sql_escape_like(value: ColumnElement[Any]) -> ColumnElement[Any]:
    for char in (LIKE_ESCAPE, "%", "_"):
        value = func.replace(value, char, LIKE_ESCAPE + char, type_=String())
    return value


# Functions by name; each compiles a checked Call whose arguments have their types.
_FUNCTIONS: dict[str, Callable[[SqlCompiler, ast.Call], ColumnElement[Any]]] = {
    "lower": SqlCompiler._fn_case,
    "upper": SqlCompiler._fn_case,
    "trim": SqlCompiler._fn_simple,
    "len": SqlCompiler._fn_simple,
    "abs": SqlCompiler._fn_simple,
    "concat": SqlCompiler._fn_concat,
    "coalesce": SqlCompiler._fn_coalesce,
    "round": SqlCompiler._fn_round,
    "today": SqlCompiler._fn_today,
    "now": SqlCompiler._fn_now,
    "date": SqlCompiler._fn_date,
    "year": SqlCompiler._fn_date_part,
    "month": SqlCompiler._fn_date_part,
    "day": SqlCompiler._fn_date_part,
    "if": SqlCompiler._fn_if,
    "min": SqlCompiler._fn_extreme,
    "max": SqlCompiler._fn_extreme,
    "datetime": SqlCompiler._fn_datetime,
    "days_between": SqlCompiler._fn_days_between,
    "add_days": SqlCompiler._fn_add_days,
    "add_hours": SqlCompiler._fn_add_hours,
}
# Functions that do something other than give null when an argument is the null literal.
_NULL_TOLERANT = frozenset({"concat", "coalesce", "if"})
