"""The value types of the rule language and which operators accept which of them, as tables.

The checker reads these tables; adding an operand pair or an operator is a change of data here.
"""

from __future__ import annotations

TEXT = "text"
INTEGER = "integer"
DECIMAL = "decimal"
BOOLEAN = "boolean"
DATE = "date"
DATETIME = "datetime"
LIST = "list"
NULL = "null"

VALUE_TYPES = frozenset({TEXT, INTEGER, DECIMAL, BOOLEAN, DATE, DATETIME, LIST, NULL})
NUMBERS = frozenset({INTEGER, DECIMAL})
TEMPORAL = frozenset({DATE, DATETIME})

# `$user.<attr>` and the value type each attribute has.
USER_ATTRIBUTES: dict[str, str] = {"id": TEXT, "role": TEXT, "org_unit": TEXT}

# How many lookups a path may follow: `a.b.c.field` is the longest.
MAX_LOOKUP_HOPS = 3


def _pairs(*groups: frozenset[str]) -> frozenset[tuple[str, str]]:
    """Every ordered pair within each group: the members of a group compare with each other."""
    return frozenset((a, b) for group in groups for a in group for b in group)


EQUALITY = _pairs(frozenset({TEXT}), NUMBERS, frozenset({BOOLEAN}), TEMPORAL)
ORDERING = _pairs(frozenset({TEXT}), NUMBERS, TEMPORAL)

# (left type, right type) pairs each comparison accepts; `in` checks each list item.
COMPARISON_OPERANDS: dict[str, frozenset[tuple[str, str]]] = {
    "==": EQUALITY,
    "!=": EQUALITY,
    "<": ORDERING,
    "<=": ORDERING,
    ">": ORDERING,
    ">=": ORDERING,
    "in": EQUALITY,
    "not in": EQUALITY,
    "contains": frozenset({(TEXT, TEXT), (LIST, TEXT)}),
    "startswith": frozenset({(TEXT, TEXT)}),
    "endswith": frozenset({(TEXT, TEXT)}),
}

_NUMERIC_RESULTS: dict[tuple[str, str], str] = {
    (INTEGER, INTEGER): INTEGER,
    (INTEGER, DECIMAL): DECIMAL,
    (DECIMAL, INTEGER): DECIMAL,
    (DECIMAL, DECIMAL): DECIMAL,
}

# (left type, right type) -> result type. Division always gives a decimal: 7 / 2 is 3.5.
ARITHMETIC_RESULTS: dict[str, dict[tuple[str, str], str]] = {
    "+": _NUMERIC_RESULTS,
    "-": _NUMERIC_RESULTS,
    "*": _NUMERIC_RESULTS,
    "/": dict.fromkeys(_NUMERIC_RESULTS, DECIMAL),
}

# Unary minus keeps the operand's type.
NEGATABLE = NUMBERS
# `and`, `or`, `not` take conditions.
LOGICAL = frozenset({BOOLEAN})


def accepts(pairs: frozenset[tuple[str, str]], left: str, right: str) -> bool:
    """Whether an operand pair is allowed; null stands in for any type the other side allows."""
    if left == NULL and right == NULL:
        return True
    if left == NULL:
        return any(b == right for _, b in pairs)
    if right == NULL:
        return any(a == left for a, _ in pairs)
    return (left, right) in pairs


def left_types(pairs: frozenset[tuple[str, str]]) -> frozenset[str]:
    return frozenset(a for a, _ in pairs)


def right_types(pairs: frozenset[tuple[str, str]]) -> frozenset[str]:
    return frozenset(b for _, b in pairs)
