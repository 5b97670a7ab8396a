"""Splitting a gate into the conditions it joins with `and`, so each unmet one can be named."""

from __future__ import annotations

import pytest

from metacrm.runtime.pipelines.gates import conjuncts
from metacrm.runtime.rules import parse


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("amount > 0 and close_date is not null", ["amount > 0", "close_date is not null"]),
        ("a > 1 and b > 2 and c > 3", ["a > 1", "b > 2", "c > 3"]),
        ("(a > 1 or b > 2) and c > 3", ["(a > 1 or b > 2)", "c > 3"]),
        ("not a and b", ["not a", "b"]),
        ('name == "this and that" and brand_new', ['name == "this and that"', "brand_new"]),
        ("name == 'it\\'s and' and x", ["name == 'it\\'s and'", "x"]),
        ("x in [1, 2] and\n y", ["x in [1, 2]", "y"]),
        ("account.band > 1 and $user.id == owner", ["account.band > 1", "$user.id == owner"]),
    ],
)
def test_a_top_level_and_splits_into_its_conditions(text: str, parts: list[str]) -> None:
    assert conjuncts(text) == parts
    for part in parts:
        parse(part)


@pytest.mark.parametrize(
    "text",
    [
        "amount > 0",
        "a > 1 and b > 2 or c > 3",
        "a > 1 or b > 2 and c > 3",
        "(a > 1 and b > 2)",
        "android > 1",
        "if(a and b, true, false)",
        "a and",
    ],
)
def test_anything_else_stays_one_condition(text: str) -> None:
    assert conjuncts(text) == [text.strip()]
