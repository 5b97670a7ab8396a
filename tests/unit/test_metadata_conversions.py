"""The table of allowed type changes, and how one stored value converts across each."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from metacrm.metadata.conversions import (
    CONVERSIONS,
    REVALIDATE,
    REWRITE,
    allowed_targets,
    convert,
)
from metacrm.metadata.model import FieldDef
from metacrm.metadata.types import FIELD_TYPES
from metacrm.metadata.values import ValueProblem

OPTIONS = [{"value": "a"}, {"value": "b"}]


def field(type_name: str, **options: Any) -> FieldDef:
    if type_name in ("picklist", "multipicklist"):
        options.setdefault("options", OPTIONS)
    return FieldDef.from_doc({"name": "f", "type": type_name, **options})


def converts(old: str, new: str, value: Any, **new_options: Any) -> Any:
    assert (old, new) in CONVERSIONS
    return convert(field(old), field(new, **new_options), value)


def refuses(old: str, new: str, value: Any, **new_options: Any) -> ValueProblem:
    assert (old, new) in CONVERSIONS
    with pytest.raises(ValueProblem) as caught:
        convert(field(old), field(new, **new_options), value)
    return caught.value


# --- the table -------------------------------------------------------------------------------


def test_table_names_only_known_types_and_modes() -> None:
    for (old, new), mode in CONVERSIONS.items():
        assert old in FIELD_TYPES
        assert new in FIELD_TYPES
        assert old != new
        assert mode in (REVALIDATE, REWRITE)


@pytest.mark.parametrize(
    "pair",
    [
        ("lookup", "text"),
        ("text", "lookup"),
        ("user", "text"),
        ("text", "user"),
        ("formula", "integer"),
        ("integer", "formula"),
        ("text", "autonumber"),
        ("autonumber", "integer"),
        ("boolean", "decimal"),
        ("boolean", "date"),
        ("date", "integer"),
        ("multipicklist", "integer"),
        ("decimal", "date"),
        ("text", "text"),
    ],
)
def test_disallowed_pairs_are_absent(pair: tuple[str, str]) -> None:
    assert pair not in CONVERSIONS


@pytest.mark.parametrize(
    ("pair", "mode"),
    [
        (("text", "email"), REVALIDATE),
        (("email", "text"), REVALIDATE),
        (("text", "picklist"), REVALIDATE),
        (("autonumber", "text"), REVALIDATE),
        (("text", "integer"), REWRITE),
        (("integer", "decimal"), REWRITE),
        (("decimal", "integer"), REWRITE),
        (("boolean", "integer"), REWRITE),
        (("integer", "boolean"), REWRITE),
        (("date", "datetime"), REWRITE),
        (("datetime", "date"), REWRITE),
        (("picklist", "multipicklist"), REWRITE),
        (("multipicklist", "picklist"), REWRITE),
        (("datetime", "textarea"), REWRITE),
    ],
)
def test_allowed_pairs_have_their_mode(pair: tuple[str, str], mode: str) -> None:
    assert CONVERSIONS[pair] == mode


def test_allowed_targets_lists_the_table_sorted() -> None:
    assert allowed_targets("boolean") == ["integer", "text", "textarea"]
    assert allowed_targets("lookup") == []
    assert allowed_targets("formula") == []


# --- into text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "value", "expected"),
    [
        ("integer", 12, "12"),
        ("decimal", Decimal("3.50"), "3.50"),
        ("boolean", True, "true"),
        ("boolean", False, "false"),
        ("date", date(2024, 2, 29), "2024-02-29"),
        ("datetime", datetime(2024, 3, 1, 12, 30, tzinfo=UTC), "2024-03-01T12:30:00Z"),
        ("multipicklist", ["a", "b"], "a;b"),
        ("multipicklist", [], None),
        ("email", "ann@example.com", "ann@example.com"),
        ("autonumber", "OPP-00001", "OPP-00001"),
    ],
)
def test_values_become_text(old: str, value: Any, expected: str | None) -> None:
    assert converts(old, "text", value) == expected


def test_text_that_is_too_long_for_the_new_type_is_refused() -> None:
    assert refuses("textarea", "text", "x" * 300).code == "max_length"


def test_text_into_formatted_text_is_checked() -> None:
    assert converts("text", "email", "ann@example.com") == "ann@example.com"
    assert refuses("text", "email", "ann").code == "format"
    assert converts("text", "url", "") is None


def test_text_into_picklist_must_be_an_option() -> None:
    assert converts("text", "picklist", "a") == "a"
    assert refuses("text", "picklist", "z").code == "choice"


def test_none_always_converts_to_none() -> None:
    for old, new in CONVERSIONS:
        assert convert(field(old), field(new), None) is None


# --- numbers ---------------------------------------------------------------------------------


def test_text_holding_a_number_becomes_an_integer() -> None:
    assert converts("text", "integer", "12") == 12
    assert converts("text", "integer", " -4 ") == -4


@pytest.mark.parametrize("value", ["12.5", "twelve", "1e3"])
def test_text_that_is_not_an_integer_is_refused(value: str) -> None:
    assert refuses("text", "integer", value).code == "type"


def test_integer_becomes_an_exact_decimal() -> None:
    result = converts("integer", "decimal", 7)
    assert isinstance(result, Decimal)
    assert result == Decimal(7)


def test_integer_too_large_for_the_decimal_precision_is_refused() -> None:
    assert refuses("integer", "decimal", 10**6, precision=6, scale=2).code == "range"


def test_whole_decimal_becomes_an_integer() -> None:
    result = converts("decimal", "integer", Decimal("3.00"))
    assert result == 3
    assert type(result) is int


def test_decimal_with_a_fraction_is_refused_as_integer() -> None:
    assert refuses("decimal", "integer", Decimal("3.5")).code == "type"


def test_text_becomes_a_decimal_within_scale() -> None:
    assert converts("text", "decimal", "12.25") == Decimal("12.25")
    assert refuses("text", "decimal", "12.255").code == "scale"


def test_integer_bounds_of_the_new_field_apply() -> None:
    assert refuses("decimal", "integer", Decimal(-1), min=0).code == "min"


# --- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(True, 1), (False, 0)])
def test_boolean_becomes_zero_or_one(value: bool, expected: int) -> None:
    result = converts("boolean", "integer", value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(("value", "expected"), [(1, True), (0, False)])
def test_zero_and_one_become_booleans(value: int, expected: bool) -> None:
    assert converts("integer", "boolean", value) is expected


@pytest.mark.parametrize("value", [2, -1])
def test_other_integers_are_refused_as_booleans(value: int) -> None:
    assert refuses("integer", "boolean", value).code == "type"


def test_text_words_become_booleans() -> None:
    assert converts("text", "boolean", "yes") is True
    assert refuses("text", "boolean", "perhaps").code == "type"


# --- dates and times -------------------------------------------------------------------------


def test_date_becomes_midnight_utc() -> None:
    assert converts("date", "datetime", date(2024, 3, 1)) == datetime(2024, 3, 1, tzinfo=UTC)


def test_datetime_at_midnight_becomes_a_date() -> None:
    assert converts("datetime", "date", datetime(2024, 3, 1, tzinfo=UTC)) == date(2024, 3, 1)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_datetime_with_a_time_of_day_is_refused_as_date(value: datetime) -> None:
    problem = refuses("datetime", "date", value)
    assert problem.code == "lossy"
    assert "time of day" in problem.message


def test_text_becomes_a_date_only_if_real() -> None:
    assert converts("text", "date", "2024-02-29") == date(2024, 2, 29)
    assert refuses("text", "date", "2023-02-29").code == "format"


# --- picklists -------------------------------------------------------------------------------


def test_picklist_becomes_a_one_item_multipicklist() -> None:
    assert converts("picklist", "multipicklist", "a") == ["a"]


def test_picklist_value_missing_from_the_new_options_is_refused() -> None:
    problem = refuses("picklist", "multipicklist", "a", options=[{"value": "b"}])
    assert problem.code == "choice"


def test_single_choice_multipicklist_becomes_a_picklist() -> None:
    assert converts("multipicklist", "picklist", ["b"]) == "b"
    assert converts("multipicklist", "picklist", []) is None


def test_multipicklist_with_several_choices_is_refused_as_picklist() -> None:
    assert refuses("multipicklist", "picklist", ["a", "b"]).code == "lossy"


def test_text_with_separators_becomes_a_multipicklist() -> None:
    assert converts("text", "multipicklist", "a;b;a") == ["a", "b"]
