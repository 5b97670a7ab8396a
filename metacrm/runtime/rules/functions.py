"""The functions of the rule language and their signatures, as a table.

A new function is a row here plus one entry in each backend (compile_sql and compile_py).
"""

from __future__ import annotations

from dataclasses import dataclass

from metacrm.runtime.rules.operators import (
    BOOLEAN,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LIST,
    NUMBERS,
    TEMPORAL,
    TEXT,
)

# Result markers for functions whose type follows their arguments.
SAME_AS_FIRST = "=first"
COMMON = "=common"

ANY = frozenset({TEXT, INTEGER, DECIMAL, BOOLEAN, DATE, DATETIME, LIST})
TEXTS = frozenset({TEXT})
INTEGERS = frozenset({INTEGER})
CONDITIONS = frozenset({BOOLEAN})
# Values with an order, for min() and max().
ORDERABLE = frozenset({TEXT, INTEGER, DECIMAL, DATE, DATETIME})


@dataclass(frozen=True)
class Signature:
    # Accepted value types for each parameter (null is accepted everywhere).
    params: tuple[frozenset[str], ...]
    # A value type, SAME_AS_FIRST, or COMMON (the arguments' shared type).
    result: str
    # How many arguments are required; the rest of `params` are optional.
    required: int | None = None
    # The last parameter repeats any number of times.
    variadic: bool = False
    # For COMMON: the first argument that takes part (if()'s condition does not).
    common_from: int = 0

    @property
    def min_args(self) -> int:
        return len(self.params) if self.required is None else self.required

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.params)

    def param(self, index: int) -> frozenset[str]:
        return self.params[min(index, len(self.params) - 1)]


FUNCTIONS: dict[str, Signature] = {
    "lower": Signature((TEXTS,), TEXT),
    "upper": Signature((TEXTS,), TEXT),
    "trim": Signature((TEXTS,), TEXT),
    "len": Signature((TEXTS,), INTEGER),
    "concat": Signature((frozenset({TEXT, INTEGER}),), TEXT, variadic=True),
    "coalesce": Signature((ANY, ANY), COMMON, variadic=True),
    "abs": Signature((NUMBERS,), SAME_AS_FIRST),
    "round": Signature((NUMBERS, INTEGERS), SAME_AS_FIRST, required=1),
    "today": Signature((), DATE),
    "now": Signature((), DATETIME),
    "date": Signature((TEMPORAL,), DATE),
    "year": Signature((TEMPORAL,), INTEGER),
    "month": Signature((TEMPORAL,), INTEGER),
    "day": Signature((TEMPORAL,), INTEGER),
    "if": Signature((CONDITIONS, ANY, ANY), COMMON, common_from=1),
    "min": Signature((ORDERABLE, ORDERABLE), COMMON, variadic=True),
    "max": Signature((ORDERABLE, ORDERABLE), COMMON, variadic=True),
    "datetime": Signature((TEMPORAL,), DATETIME),
    "days_between": Signature((TEMPORAL, TEMPORAL), INTEGER),
    "add_days": Signature((TEMPORAL, INTEGERS), SAME_AS_FIRST),
    # A date counts as its first instant (UTC); the result is always a datetime.
    "add_hours": Signature((TEMPORAL, INTEGERS), DATETIME),
}

# Functions that look at the change being made; only rules that see a change may call them.
CHANGE_FUNCTIONS: frozenset[str] = frozenset({"changed"})

# Named for messages: "argument 1 of lower() must be text".
TYPE_SET_NAMES: dict[frozenset[str], str] = {
    TEXTS: "text",
    NUMBERS: "a number",
    TEMPORAL: "a date or datetime",
    INTEGERS: "an integer",
    CONDITIONS: "a condition (true or false)",
    ORDERABLE: "text, a number, a date or a datetime",
    frozenset({TEXT, INTEGER}): "text or an integer",
    ANY: "a value",
}
