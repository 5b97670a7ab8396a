"""The rule language's functions for the Python backend: how each builds its closure from its
arguments (compiled by the caller's `compile_arg`). Null in gives null out, except for concat,
coalesce, if and changed (NULL_TOLERANT); results stay within every backend's limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

from metacrm.runtime.rules import ast
from metacrm.runtime.rules.python_values import (
    DECIMALS,
    MAX_TEXT_LENGTH,
    NORMALIZE,
    Env,
    Eval,
    always_null,
    bounded_text,
    identity,
    int64,
    normal_datetime,
    now_of,
    today_of,
    too_large,
    too_long,
    utc_date,
)
from metacrm.runtime.rules.sql_dialect import MAX_ROUND_PLACES

# Compiles an argument of a call into its closure.
Compile = Callable[[ast.Node], Eval]


def _strict(node: ast.Call, compile_arg: Compile, compute: Callable[..., Any]) -> Eval:
    """A function that gives null when any argument is null, else compute(*values)."""
    args = tuple(compile_arg(a) for a in node.args)
    if len(args) == 1:
        return _strict_1(compute, *args)
    if len(args) == 2:
        return _strict_2(compute, *args)

    def strict(env: Env, record: Mapping[str, Any]) -> Any:
        values = []
        for arg in args:
            value = arg(env, record)
            if value is None:
                return None
            values.append(value)
        return compute(*values)

    return strict


def _strict_1(compute: Callable[[Any], Any], arg: Eval) -> Eval:
    def strict_1(env: Env, record: Mapping[str, Any]) -> Any:
        value = arg(env, record)
        return None if value is None else compute(value)

    return strict_1


def _strict_2(compute: Callable[[Any, Any], Any], first: Eval, second: Eval) -> Eval:
    def strict_2(env: Env, record: Mapping[str, Any]) -> Any:
        a = first(env, record)
        if a is None:
            return None
        b = second(env, record)
        return None if b is None else compute(a, b)

    return strict_2


def _fn_case(node: ast.Call, compile_arg: Compile) -> Eval:
    change = str.lower if node.name == "lower" else str.upper
    return _strict(node, compile_arg, lambda text: bounded_text(change(text), node))


def _fn_trim(node: ast.Call, compile_arg: Compile) -> Eval:
    # SQL's trim() removes spaces only, not tabs or newlines.
    return _strict(node, compile_arg, lambda text: text.strip(" "))


def _fn_len(node: ast.Call, compile_arg: Compile) -> Eval:
    return _strict(node, compile_arg, len)


def _fn_abs(node: ast.Call, compile_arg: Compile) -> Eval:
    def absolute(value: Any) -> Any:
        return int64(abs(value), node) if isinstance(value, int) else abs(value)

    return _strict(node, compile_arg, absolute)


def _fn_round(node: ast.Call, compile_arg: Compile) -> Eval:
    def round_(number: Any, places: int = 0) -> Any:
        if isinstance(number, int):
            return number  # whole already: places are never negative
        places = min(max(places, 0), MAX_ROUND_PLACES)
        step = Decimal((0, (1,), -places))
        try:
            return number.quantize(step, rounding=ROUND_HALF_UP, context=DECIMALS)
        except (InvalidOperation, Overflow, DivisionByZero):
            raise too_large(node) from None

    return _strict(node, compile_arg, round_)


def _fn_concat(node: ast.Call, compile_arg: Compile) -> Eval:
    # Null arguments count as empty text, so concat(first, " ", last) always gives text.
    args = tuple(compile_arg(a) for a in node.args if not always_null(a))

    def concat(env: Env, record: Mapping[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        for arg in args:
            value = arg(env, record)
            if value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            size += len(text)
            if size > MAX_TEXT_LENGTH:
                raise too_long(node)
            parts.append(text)
        return "".join(parts)

    return concat


def _fn_coalesce(node: ast.Call, compile_arg: Compile) -> Eval:
    args = tuple(compile_arg(a) for a in node.args)

    def coalesce(env: Env, record: Mapping[str, Any]) -> Any:
        for arg in args:
            value = arg(env, record)
            if value is not None:
                return value
        return None

    return coalesce


def _fn_if(node: ast.Call, compile_arg: Compile) -> Eval:
    # A condition that is null takes the second branch, as SQL's CASE does.
    condition, then, otherwise = (compile_arg(a) for a in node.args)

    def if_(env: Env, record: Mapping[str, Any]) -> Any:
        if condition(env, record) is True:
            return then(env, record)
        return otherwise(env, record)

    return if_


def _fn_extreme(node: ast.Call, compile_arg: Compile) -> Eval:
    # Null when any argument is null, like every function but concat, coalesce and if.
    pick: Callable[[Iterable[Any]], Any] = min if node.name == "min" else max
    return _strict(node, compile_arg, lambda *values: pick(values))


def _fn_today(_node: ast.Call, compile_arg: Compile) -> Eval:
    return today_of


def _fn_now(_node: ast.Call, compile_arg: Compile) -> Eval:
    return now_of


def _fn_date(node: ast.Call, compile_arg: Compile) -> Eval:
    return _strict(node, compile_arg, utc_date)


def _fn_datetime(node: ast.Call, compile_arg: Compile) -> Eval:
    return _strict(node, compile_arg, normal_datetime)


_DATE_PARTS: dict[str, Callable[[date], int]] = {
    "year": lambda d: d.year,
    "month": lambda d: d.month,
    "day": lambda d: d.day,
}


def _fn_date_part(node: ast.Call, compile_arg: Compile) -> Eval:
    part = _DATE_PARTS[node.name]
    return _strict(node, compile_arg, lambda value: part(utc_date(value)))


def _fn_days_between(node: ast.Call, compile_arg: Compile) -> Eval:
    # Whole calendar days between the UTC dates: a datetime counts as the day it falls on.
    def days_between(first: date, second: date) -> int:
        return (utc_date(second) - utc_date(first)).days

    return _strict(node, compile_arg, days_between)


def _fn_add_days(node: ast.Call, compile_arg: Compile) -> Eval:
    def add_days(value: date, days: int) -> date | None:
        try:
            return value + timedelta(days=days)
        except OverflowError:
            return None  # beyond the years 1 to 9999, as on the databases

    return _strict(node, compile_arg, add_days)


def _fn_add_hours(node: ast.Call, compile_arg: Compile) -> Eval:
    def add_hours(value: date, hours: int) -> datetime | None:
        try:
            return normal_datetime(value) + timedelta(hours=hours)
        except OverflowError:
            return None  # beyond the years 1 to 9999, as on the databases

    return _strict(node, compile_arg, add_hours)


def _fn_changed(node: ast.Call, compile_arg: Compile) -> Eval:
    (arg,) = node.args
    assert isinstance(arg, ast.FieldRef)
    name = arg.path[0]
    normalize = NORMALIZE.get(arg.vtype or "", identity)

    def changed(env: Env, record: Mapping[str, Any]) -> bool:
        if env.old is None:
            return False
        before, after = normalize(env.old.get(name)), normalize(record.get(name))
        if before is None or after is None:
            return (before is None) != (after is None)
        return bool(before != after)

    return changed


FUNCTIONS: dict[str, Callable[[ast.Call, Compile], Eval]] = {
    "lower": _fn_case,
    "upper": _fn_case,
    "trim": _fn_trim,
    "len": _fn_len,
    "concat": _fn_concat,
    "coalesce": _fn_coalesce,
    "abs": _fn_abs,
    "round": _fn_round,
    "today": _fn_today,
    "now": _fn_now,
    "date": _fn_date,
    "year": _fn_date_part,
    "month": _fn_date_part,
    "day": _fn_date_part,
    "if": _fn_if,
    "min": _fn_extreme,
    "max": _fn_extreme,
    "datetime": _fn_datetime,
    "days_between": _fn_days_between,
    "add_days": _fn_add_days,
    "add_hours": _fn_add_hours,
    "changed": _fn_changed,
}
# Functions that do something other than give null when an argument is the null literal.
NULL_TOLERANT = frozenset({"concat", "coalesce", "if", "changed"})
