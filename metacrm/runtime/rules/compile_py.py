"""Turns a checked rule into a Python function of an `Env`, or of the record alone, with the SQL
backend's answers.

The tree becomes nested closures once; evaluating them runs no user text and does bounded work.
Every closure takes the Env (the user, the clock, the change) and the record on its own, so a
caller evaluating one rule over many records (compile_python_record) needs no Env per record.

Choices where the databases leave room, shared with compile_sql:
- Null follows SQL: comparisons, arithmetic and functions with a null argument give null (except
  concat, coalesce and if); `and`/`or`/`not` use three-valued logic; a condition holds only
  when it is true.
- `changed(x)` is two-valued: true when old values are in view and x differs from before, a
  null becoming a value (or the reverse) counting as a change. Without old values it is false.
- `old.a.b` through a lookup is known only while `a` is unchanged (then it is `a.b` now).
- Results outside what every backend can hold are errors here (RuleEvaluationError): integers
  beyond 64 bits and text longer than MAX_TEXT_LENGTH. Dates that add_days() or add_hours()
  move outside the years 1 to 9999 are null, on every backend.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import (
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from types import MethodType
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.runtime.rules import ast
from metacrm.runtime.rules.builtins_py import FUNCTIONS, NULL_TOLERANT
from metacrm.runtime.rules.check import Checked, Scope, check
from metacrm.runtime.rules.operators import DATE, DATETIME, DECIMAL, LIST, TEXT
from metacrm.runtime.rules.parse import parse
from metacrm.runtime.rules.python_values import (
    DECIMALS,
    MAX_TEXT_LENGTH,
    NO_RECORD,
    NORMALIZE,
    Env,
    Eval,
    RuleEvaluationError,
    always_null,
    identity,
    int64,
    now_of,
    null,
    today_of,
    too_large,
    widen,
)

__all__ = [
    "CACHE_SIZE",
    "MAX_TEXT_LENGTH",
    "Env",
    "Fn",
    "RecordFn",
    "RelatedFor",
    "RuleEvaluationError",
    "compile_python",
    "compile_python_record",
    "compiled",
    "holds",
]

Fn = Callable[[Env], Any]
# A rule as a function of the record alone, for one user and clock.
RecordFn = Callable[[Mapping[str, Any]], Any]
# Gives the Env's `related` for a record: the values at lookup paths such as ("account", "name").
RelatedFor = Callable[[Mapping[str, Any]], Callable[[tuple[str, ...]], Any]]

# Compiled rules kept per entity snapshot; beyond this the oldest are dropped.
CACHE_SIZE = 512


def holds(fn: Fn, env: Env) -> bool:
    """Whether a compiled condition is true; null (unknown) does not hold, as in SQL."""
    return fn(env) is True


def compile_python(checked: Checked) -> Fn:
    """A checked expression as a function of an Env; build it once, call it per record."""
    evaluate = _compile(checked.node)

    def run(env: Env) -> Any:
        return evaluate(env, env.record)

    return run


def compile_python_record(
    checked: Checked,
    user: Mapping[str, Any],
    now: datetime,
    *,
    related_for: RelatedFor | None = None,
) -> RecordFn:
    """A checked expression as a function of the record alone, to run it over many records for
    one user at one time. `run(record)` gives what compile_python's function gives for
    `Env(record, user, now, related=related_for(record))`, without an Env per record unless the
    expression reads through lookups (those need `related_for`, else ValueError). No change is
    in view: `old.x` is null and `changed(x)` is false."""
    evaluate = _compile(checked.node)
    if not any(len(path) > 1 for path in checked.paths):
        # Bound like a method: the Env is the first argument, and calls cost less than a partial's.
        return MethodType(evaluate, Env(NO_RECORD, user, now))
    if related_for is None:
        raise ValueError("the expression reads through lookups: pass related_for")

    def run(record: Mapping[str, Any]) -> Any:
        return evaluate(Env(record, user, now, related=related_for(record)), record)

    return run


def compiled(
    entity: EntityDef,
    text: str,
    *,
    expect: str | None,
    allow_change_refs: bool,
    resolve_entity: Callable[[str], EntityDef | None],
    cache: dict[Any, tuple[Checked, Fn]] | None = None,
    inputs: Mapping[tuple[str, ...], str | None] | None = None,
) -> tuple[Checked, Fn]:
    """Parse, check and compile; with `cache` (one per entity snapshot: the catalog keeps it),
    once per snapshot. The cache is bounded: texts may come from clients (the rule tester).
    `inputs` puts a record action's input in scope (see Scope)."""
    shape = None if inputs is None else tuple(sorted(inputs.items(), key=lambda i: i[0]))
    key = (text, expect, allow_change_refs, shape)
    found = cache.get(key) if cache is not None else None
    if found is None:
        scope = Scope(entity, resolve_entity, allow_change_refs=allow_change_refs, inputs=inputs)
        checked = check(parse(text), scope, expect=expect)
        found = (checked, compile_python(checked))
        if cache is not None:
            if len(cache) >= CACHE_SIZE:
                cache.pop(next(iter(cache)), None)
            cache[key] = found
    return found


# --- the compiler ------------------------------------------------------------------------------


def _compile(node: ast.Node) -> Eval:
    if node.vtype is None:
        raise ValueError("the expression must be checked before it is compiled")
    build = _NODES.get(type(node))
    if build is None:
        raise ValueError(f"'{type(node).__name__}' cannot be evaluated")
    return build(node)


def _true(_env: Env, _record: Mapping[str, Any]) -> bool:
    return True


def _false(_env: Env, _record: Mapping[str, Any]) -> bool:
    return False


def _literal(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Literal)
    value = node.value

    def literal(_env: Env, _record: Mapping[str, Any]) -> Any:
        return value

    return literal


def _field(node: ast.Node) -> Eval:
    assert isinstance(node, ast.FieldRef)
    path = node.path
    if len(path) == 1:
        return _plain_field(sys.intern(path[0]), NORMALIZE.get(node.vtype or ""))
    normalize = NORMALIZE.get(node.vtype or "", identity)

    def related(env: Env, _record: Mapping[str, Any]) -> Any:
        return normalize(env.related(path)) if env.related is not None else None

    return related


def _plain_field(name: str, normalize: Callable[[Any], Any] | None) -> Eval:
    if normalize is None:

        def field(_env: Env, record: Mapping[str, Any]) -> Any:
            return record.get(name)

        return field

    def normalized(_env: Env, record: Mapping[str, Any]) -> Any:
        return normalize(record.get(name))

    return normalized


def _old(node: ast.Node) -> Eval:
    assert isinstance(node, ast.OldRef)
    normalize = NORMALIZE.get(node.vtype or "", identity)
    path = node.path
    first = path[0]

    def old(env: Env, record: Mapping[str, Any]) -> Any:
        if env.old is None:
            return None
        if len(path) == 1:
            return normalize(env.old.get(first))
        # Through a lookup, only an unchanged link says what the old record looked like.
        if env.related is None or env.old.get(first) != record.get(first):
            return None
        return normalize(env.related(path))

    return old


def _input(node: ast.Node) -> Eval:
    assert isinstance(node, ast.InputRef)
    normalize = NORMALIZE.get(node.vtype or "", identity)
    path = node.path

    def value(env: Env, _record: Mapping[str, Any]) -> Any:
        found: Any = env.input
        for key in path:
            found = found.get(key) if isinstance(found, Mapping) else None
        return normalize(found)

    return value


def _user(node: ast.Node) -> Eval:
    assert isinstance(node, ast.UserRef)
    attr = node.attr

    def user(env: Env, _record: Mapping[str, Any]) -> Any:
        return env.user.get(attr)

    return user


def _now_node(_node: ast.Node) -> Eval:
    return now_of


def _today_node(_node: ast.Node) -> Eval:
    return today_of


def _neg(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Neg)
    operand = _compile(node.operand)

    def neg(env: Env, record: Mapping[str, Any]) -> Any:
        value = operand(env, record)
        if value is None:
            return None
        return int64(-value, node) if isinstance(value, int) else -value

    return neg


def _not(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Not)
    operand = _compile(node.operand)

    def not_(env: Env, record: Mapping[str, Any]) -> bool | None:
        value = operand(env, record)
        return None if value is None else not value

    return not_


# What an inline check applies: test(value, constant) gives a bool.
_Test = Callable[[Any, Any], bool]
# A clause checked inline: (field, test, constant, usual class, normaliser). The field's value is
# normalised unless it has the usual class (or no normaliser applies to its type).
_Check = tuple[str, _Test, Any, type | None, Callable[[Any], Any] | None]


def _inline_check(node: ast.Node) -> _Check | None:
    """`field <op> constant`, `field in [constants]` or `not (field in [constants])` as data,
    so an and/or-chain of them runs in one loop instead of a call per clause."""
    negated = False
    if isinstance(node, ast.Not) and isinstance(node.operand, ast.Compare):
        negated, node = True, node.operand
    if not isinstance(node, ast.Compare) or not isinstance(node.left, ast.FieldRef):
        return None
    if len(node.left.path) != 1:
        return None
    if node.op in ("in", "not in"):
        found = _inline_membership(node, negated)
    else:
        found = None if negated else _inline_comparison(node)
    if found is None:
        return None
    field_type = node.left.vtype or ""
    usual = {DECIMAL: Decimal, DATE: date}.get(field_type)
    # Interned, the name is found in a record by identity, as a hand-written key would be.
    name = sys.intern(node.left.path[0])
    return (name, *found, usual, NORMALIZE.get(field_type))


def _inline_comparison(node: ast.Compare) -> tuple[_Test, Any] | None:
    right = node.right
    if not isinstance(right, ast.Literal) or right.value is None:
        return None
    if _widens(node.left.vtype, right.vtype):
        return None
    constant = right.value
    if node.left.vtype == DECIMAL and type(constant) is int:
        constant = Decimal(constant)  # exact, and a decimal compares faster with its own kind
    return _test_for(node.op, node.left.vtype), constant


def _inline_membership(node: ast.Compare, negated: bool) -> tuple[_Test, Any] | None:
    assert isinstance(node.right, ast.ListLit)
    values = []
    for item in node.right.items:
        if not isinstance(item, ast.Literal) or item.value is None:
            return None
        if _widens(node.left.vtype, item.vtype):
            return None
        values.append(item.value)
    if not values:
        return None
    outside = (node.op == "not in") != negated
    try:
        # `value in values` as one C call: the test is table.get and the constant its default.
        table = dict.fromkeys(values, not outside)
    except TypeError:
        return None
    return table.get, outside


def _split(operands: tuple[ast.Node, ...]) -> tuple[tuple[_Check, ...], tuple[Eval, ...]]:
    """The operands of a chain that are inline checks, and the others compiled."""
    inline = [(o, _inline_check(o)) for o in operands]
    checks = tuple(check for _, check in inline if check is not None)
    others = tuple(_compile(o) for o, check in inline if check is None)
    return checks, others


def _all_of(operands: tuple[ast.Node, ...]) -> Eval:
    """`and`: false when an operand is false; else null when one is null; else true (SQL's).
    Inline checks run first, in one loop."""
    checks, others = _split(operands)

    def all_of(env: Env, record: Mapping[str, Any]) -> bool | None:
        unknown = False
        for name, test, constant, usual, normalize in checks:
            # [] rather than .get(): it costs less per clause, and a missing field is null all the
            # same (it is what Mapping.get does).
            try:
                value = record[name]
            except KeyError:
                value = None
            if value is None:
                unknown = True
                continue
            if normalize is not None and type(value) is not usual:
                value = normalize(value)
            if not test(value, constant):
                return False
        if others:  # skips making an iterator when every operand was inline
            for operand in others:
                value = operand(env, record)
                if value is None:
                    unknown = True
                elif not value:
                    return False
        return None if unknown else True

    return all_of


def _any_of(operands: tuple[ast.Node, ...]) -> Eval:
    """`or`, _all_of's mirror image: true when an operand is true; else null when one is null;
    else false. (Two loops, not one taking the deciding value: the test there is the hot path.)"""
    checks, others = _split(operands)

    def any_of(env: Env, record: Mapping[str, Any]) -> bool | None:
        unknown = False
        for name, test, constant, usual, normalize in checks:
            try:
                value = record[name]
            except KeyError:
                value = None
            if value is None:
                unknown = True
                continue
            if normalize is not None and type(value) is not usual:
                value = normalize(value)
            if test(value, constant):
                return True
        if others:
            for operand in others:
                value = operand(env, record)
                if value is None:
                    unknown = True
                elif value:
                    return True
        return None if unknown else False

    return any_of


def _one_check(check: _Check) -> Eval:
    """A single inline check as a closure."""
    name, test, constant, usual, normalize = check

    def checked(_env: Env, record: Mapping[str, Any]) -> bool | None:
        value = record.get(name)
        if value is None:
            return None
        if normalize is not None and type(value) is not usual:
            value = normalize(value)
        return test(value, constant)

    return checked


def _bool_op(node: ast.Node) -> Eval:
    assert isinstance(node, ast.BoolOp)
    return _any_of(node.operands) if node.op == "or" else _all_of(node.operands)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_DECIMAL_ARITH: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": DECIMALS.add,
    "-": DECIMALS.subtract,
    "*": DECIMALS.multiply,
    "/": DECIMALS.divide,
}


def _arith(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Arith)
    if always_null(node.left) or always_null(node.right):
        return null
    left, right = _compile(node.left), _compile(node.right)
    on_integers = _ARITH.get(node.op)
    on_decimals = _DECIMAL_ARITH[node.op]

    def in_decimals(a: Any, b: Any) -> Decimal:
        try:
            return on_decimals(Decimal(a), Decimal(b))
        except (InvalidOperation, Overflow, DivisionByZero):
            raise too_large(node) from None

    if on_integers is None:

        def divide(env: Env, record: Mapping[str, Any]) -> Decimal | None:
            a = left(env, record)
            if a is None:
                return None
            b = right(env, record)
            # True division, and null rather than an error when dividing by zero.
            if b is None or b == 0:
                return None
            return in_decimals(a, b)

        return divide

    def arith(env: Env, record: Mapping[str, Any]) -> Any:
        a = left(env, record)
        if a is None:
            return None
        b = right(env, record)
        if b is None:
            return None
        if isinstance(a, int) and isinstance(b, int):
            return int64(on_integers(a, b), node)
        return in_decimals(a, b)

    return arith


# The empty value `is blank` also matches, by type; other types are blank only when null.
_EMPTY: dict[str, Callable[[Any], bool]] = {
    TEXT: lambda value: value == "",
    LIST: lambda value: len(value) == 0,
}


def _never_empty(_value: Any) -> bool:
    return False


def _is_check(node: ast.Node) -> Eval:
    assert isinstance(node, ast.IsCheck)
    operand = _compile(node.operand)
    empty = _EMPTY.get(node.operand.vtype or "", _never_empty)
    if node.test != "blank":
        empty = _never_empty
    negated = node.negated

    def is_check(env: Env, record: Mapping[str, Any]) -> bool:
        value = operand(env, record)
        found = value is None or empty(value)
        return not found if negated else found

    return is_check


_COMPARE: dict[str, _Test] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Text matching, plain substring tests: no character is a wildcard.
_TEXT_MATCH: dict[str, _Test] = {
    "contains": operator.contains,  # contains(text, part) is `part in text`
    "startswith": str.startswith,
    "endswith": str.endswith,
}


def _test_for(op: str, left_type: str | None) -> _Test:
    if op not in _TEXT_MATCH:
        return _COMPARE[op]
    # On a multipicklist, matching is membership: contains(items, item) is `item in items`.
    return operator.contains if left_type == LIST else _TEXT_MATCH[op]


def _compare(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Compare)
    if node.op in ("in", "not in"):
        return _membership(node)
    if always_null(node.left) or always_null(node.right):
        # SQL's answer: a comparison with null is unknown, never true.
        return null
    inline = _inline_check(node)
    if inline is not None:
        return _one_check(inline)
    test = _test_for(node.op, node.left.vtype)
    left, right = _compile(node.left), _compile(node.right)
    if node.left.vtype == DATE and node.right.vtype == DATETIME:
        left = _at_midnight(left)
    elif node.left.vtype == DATETIME and node.right.vtype == DATE:
        right = _at_midnight(right)

    def compare(env: Env, record: Mapping[str, Any]) -> bool | None:
        a = left(env, record)
        if a is None:
            return None
        b = right(env, record)
        if b is None:
            return None
        return test(a, b)

    return compare


def _at_midnight(operand: Eval) -> Eval:
    """A date compared with a datetime: the datetime of its first instant (UTC), as in SQL."""

    def widened(env: Env, record: Mapping[str, Any]) -> datetime | None:
        value = operand(env, record)
        return None if value is None else datetime.combine(value, time(), UTC)

    return widened


def _widens(left_type: str | None, right_type: str | None) -> bool:
    return {left_type, right_type} == {DATE, DATETIME}


def _membership(node: ast.Compare) -> Eval:
    assert isinstance(node.right, ast.ListLit)
    items = tuple((_compile(i), i.vtype) for i in node.right.items)
    negated = node.op == "not in"
    if not items:
        return _true if negated else _false
    inline = _inline_check(node)
    if inline is not None:
        return _one_check(inline)
    left = _compile(node.left)
    left_type = node.left.vtype

    def membership(env: Env, record: Mapping[str, Any]) -> bool | None:
        # As SQL: found is decisive; otherwise a null on either side leaves it unknown.
        value = left(env, record)
        unknown = value is None
        for item, item_type in items:
            candidate = item(env, record)
            if candidate is None:
                unknown = True
                continue
            if value is None:
                continue
            a, b = widen(value, left_type, candidate, item_type)
            if a == b:
                return not negated
        return None if unknown else negated

    return membership


def _call(node: ast.Node) -> Eval:
    assert isinstance(node, ast.Call)
    build = FUNCTIONS.get(node.name)
    if build is None:
        raise ValueError(f"{node.name}() cannot be evaluated")
    if node.name not in NULL_TOLERANT and any(always_null(a) for a in node.args):
        return null
    return build(node, _compile)


_NODES: dict[type[ast.Node], Callable[[ast.Node], Eval]] = {
    ast.Literal: _literal,
    ast.FieldRef: _field,
    ast.OldRef: _old,
    ast.UserRef: _user,
    ast.InputRef: _input,
    ast.Now: _now_node,
    ast.Today: _today_node,
    ast.Neg: _neg,
    ast.Not: _not,
    ast.BoolOp: _bool_op,
    ast.Arith: _arith,
    ast.IsCheck: _is_check,
    ast.Compare: _compare,
    ast.Call: _call,
}
