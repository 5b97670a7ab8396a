"""What the Python backend's closures share: the Env a rule runs in, the limits every backend
puts on results (64-bit integers, text length, decimal precision), and how values read from a
record are made comparable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from types import MappingProxyType
from typing import Any

from metacrm.platform.clock import as_utc
from metacrm.platform.errors import Position, Unprocessable
from metacrm.runtime.rules import ast
from metacrm.runtime.rules.operators import DATE, DATETIME, DECIMAL, NULL

# What every node compiles to: a function of the Env and of the record (env.record is not read).
Eval = Callable[["Env", Mapping[str, Any]], Any]

MAX_TEXT_LENGTH = 100_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Exact for everything the checker lets in (30-digit literals, 64-bit integers) short of long
# chains of products; division rounds to this many digits.
DECIMALS = Context(
    prec=60,
    rounding=ROUND_HALF_UP,
    Emax=1000,
    Emin=-1000,
    traps=[InvalidOperation, Overflow, DivisionByZero],
)


class RuleEvaluationError(Unprocessable):
    """A rule that checked but gave a value too large to use (a 422, with where it happened)."""

    type_slug = "rule-evaluation"

    def __init__(self, message: str, position: Position | None = None) -> None:
        where = f" (line {position.line}, column {position.column})" if position else ""
        super().__init__(f"{message}{where}")
        self.position = position


@dataclass(slots=True)
class Env:
    """What a rule sees when it runs: the record, the user, the clock, and a change if any."""

    # Field name -> value as the record service holds it: str, int, Decimal, bool, date,
    # datetime (UTC), list[str] for multipicklists, or None.
    record: Mapping[str, Any]
    # id, role, org_unit.
    user: Mapping[str, Any]
    # Aware, UTC; today() is its date.
    now: datetime
    # The values before the change, when a change is in view.
    old: Mapping[str, Any] | None = None
    # The value at a lookup path such as ("account", "industry"); None when unknown.
    related: Callable[[tuple[str, ...]], Any] | None = None
    # A record action's input (`input.reason`), its values as the rule language holds them.
    input: Mapping[str, Any] | None = None


# The Env's record where the closures get the record on its own (they never read env.record).
NO_RECORD: Mapping[str, Any] = MappingProxyType({})


def normal_decimal(value: Any) -> Any:
    return Decimal(repr(value)) if isinstance(value, float) else value


def normal_date(value: Any) -> Any:
    return as_utc(value).date() if isinstance(value, datetime) else value


def normal_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    return value


# How a value read from a record is made comparable, by its value type.
NORMALIZE: dict[str, Callable[[Any], Any]] = {
    DECIMAL: normal_decimal,
    DATE: normal_date,
    DATETIME: normal_datetime,
}


def identity(value: Any) -> Any:
    return value


def utc_date(value: date) -> date:
    return as_utc(value).date() if isinstance(value, datetime) else value


def int64(value: int, node: ast.Node) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise RuleEvaluationError("the result is too large for a 64-bit integer", node.pos)
    return value


def too_long(node: ast.Node) -> RuleEvaluationError:
    return RuleEvaluationError(f"the text is longer than {MAX_TEXT_LENGTH} characters", node.pos)


def bounded_text(value: str, node: ast.Node) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise too_long(node)
    return value


def too_large(node: ast.Node) -> RuleEvaluationError:
    return RuleEvaluationError("the number is too large", node.pos)


def widen(left: Any, left_type: str | None, right: Any, right_type: str | None) -> tuple[Any, Any]:
    """A date beside a datetime becomes the datetime of its first instant (UTC), as in SQL."""
    if left_type == DATE and right_type == DATETIME:
        return datetime.combine(left, time(), UTC), right
    if left_type == DATETIME and right_type == DATE:
        return left, datetime.combine(right, time(), UTC)
    return left, right


def null(_env: Env, _record: Mapping[str, Any]) -> None:
    return None


def always_null(node: ast.Node) -> bool:
    # The null literal, or anything the checker found can only be null (coalesce(null, null)).
    return node.vtype == NULL or (isinstance(node, ast.Literal) and node.value is None)


def now_of(env: Env, _record: Mapping[str, Any]) -> datetime:
    return as_utc(env.now)


def today_of(env: Env, _record: Mapping[str, Any]) -> date:
    return as_utc(env.now).date()
