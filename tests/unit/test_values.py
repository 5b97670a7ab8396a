"""Field values: input coerced to stored values, stored values read back, values as JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from metacrm.metadata.model import FieldDef
from metacrm.metadata.values import (
    INT_MAX,
    INT_MIN,
    ValueProblem,
    coerce,
    from_storage,
    to_json,
    to_storage,
)


def field(type_name: str, **options: Any) -> FieldDef:
    return FieldDef.from_doc({"name": "f", "type": type_name, **options})


def refused(f: FieldDef, value: Any) -> ValueProblem:
    with pytest.raises(ValueProblem) as caught:
        coerce(f, value)
    return caught.value


ALL_TYPES = [
    "text",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "lookup",
    "user",
    "autonumber",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "multipicklist",
]


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_none_stays_none_for_every_type(type_name: str) -> None:
    assert coerce(field(type_name), None) is None
    assert from_storage(field(type_name), None) is None


# --- text ------------------------------------------------------------------------------------


def test_text_is_kept_as_given() -> None:
    assert coerce(field("text"), "  Acme  ") == "  Acme  "
    assert coerce(field("text"), "") == ""


@pytest.mark.parametrize("type_name", ["text", "textarea", "email", "url", "picklist", "lookup"])
def test_nul_bytes_are_refused(type_name: str) -> None:
    assert refused(field(type_name), "a\x00b").code == "format"


@pytest.mark.parametrize("value", [12, 1.5, True, ["a"], {"a": 1}])
def test_text_must_be_a_string(value: Any) -> None:
    assert refused(field("text"), value).code == "type"


def test_text_max_length_counts_characters() -> None:
    f = field("text", max_length=3)
    assert coerce(f, "漢字語") == "漢字語"
    problem = refused(f, "abcd")
    assert problem.code == "max_length"
    assert "3" in problem.message


def test_text_without_max_length_is_limited_to_255() -> None:
    assert coerce(field("text"), "x" * 255) == "x" * 255
    assert refused(field("text"), "x" * 256).code == "max_length"


def test_textarea_allows_long_text_up_to_its_limit() -> None:
    assert len(coerce(field("textarea"), "x" * 100_000)) == 100_000
    assert refused(field("textarea"), "x" * 100_001).code == "max_length"


@pytest.mark.parametrize("type_name", ["email", "phone", "url", "picklist", "lookup", "user"])
def test_blank_formatted_text_becomes_null(type_name: str) -> None:
    assert coerce(field(type_name, options=[{"value": "a"}]), "   ") is None


@pytest.mark.parametrize("value", ["ann@example.com", " ann.lee+crm@mail.example.co.uk "])
def test_valid_emails_are_trimmed_and_kept(value: str) -> None:
    assert coerce(field("email"), value) == value.strip()


@pytest.mark.parametrize("value", ["ann", "ann@", "@example.com", "ann@example", "a b@c.de"])
def test_malformed_emails_are_refused(value: str) -> None:
    assert refused(field("email"), value).code == "format"


@pytest.mark.parametrize("value", ["+49 30 1234-56", "(555) 123.4567", "123"])
def test_valid_phone_numbers_are_kept(value: str) -> None:
    assert coerce(field("phone"), value) == value


@pytest.mark.parametrize("value", ["12", "call me", "+49 30 x", "1" * 41])
def test_malformed_phone_numbers_are_refused(value: str) -> None:
    assert refused(field("phone"), value).code == "format"


@pytest.mark.parametrize("value", ["https://example.com/a?b=c", "HTTP://EXAMPLE.COM"])
def test_http_urls_are_kept(value: str) -> None:
    assert coerce(field("url"), value) == value


@pytest.mark.parametrize(
    "value", ["example.com", "ftp://example.com", "javascript:alert(1)", "https://", "http://a b"]
)
def test_non_http_urls_are_refused(value: str) -> None:
    assert refused(field("url"), value).code == "format"


def test_picklist_accepts_only_its_options() -> None:
    f = field("picklist", options=[{"value": "new"}, {"value": "won"}])
    assert coerce(f, "won") == "won"
    problem = refused(f, "lost")
    assert problem.code == "choice"
    assert "new, won" in problem.message


def test_picklist_values_are_case_sensitive() -> None:
    f = field("picklist", options=[{"value": "new"}])
    assert refused(f, "New").code == "choice"


def test_reference_ids_longer_than_an_id_are_refused() -> None:
    assert coerce(field("lookup"), "0" * 26) == "0" * 26
    assert refused(field("user"), "0" * 27).code == "format"


# --- integers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), ("12", 12), (" -7 ", -7), ("+3", 3), (3.0, 3), (Decimal("4.00"), 4), (0, 0)],
)
def test_integers_from_numbers_and_text(value: Any, expected: int) -> None:
    result = coerce(field("integer"), value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [True, False, 3.5, "3.0", "1e3", "", "twelve", float("nan"), float("inf"), Decimal("NaN"), []],
)
def test_non_integers_are_refused(value: Any) -> None:
    assert refused(field("integer"), value).code == "type"


def test_integer_range_is_that_of_a_64_bit_column() -> None:
    f = field("integer")
    assert coerce(f, INT_MAX) == INT_MAX
    assert coerce(f, str(INT_MIN)) == INT_MIN
    assert refused(f, INT_MAX + 1).code == "range"
    assert refused(f, INT_MIN - 1).code == "range"


def test_integer_min_and_max_bound_the_value() -> None:
    f = field("integer", min=1, max=10)
    assert coerce(f, 1) == 1
    assert coerce(f, 10) == 10
    assert refused(f, 0).code == "min"
    assert refused(f, "11").code == "max"


# --- decimals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12.5, Decimal("12.5")),
        (0.1, Decimal("0.1")),
        ("12.50", Decimal("12.50")),
        (" -3.25 ", Decimal("-3.25")),
        (7, Decimal(7)),
        (Decimal("1.1"), Decimal("1.1")),
        ("1E+2", Decimal(100)),
    ],
)
def test_decimals_from_json_numbers_and_strings(value: Any, expected: Decimal) -> None:
    result = coerce(field("decimal", precision=10, scale=2), value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_float_input_keeps_its_shortest_decimal_form() -> None:
    # 0.1 is not exactly representable; the decimal must be 0.1, not 0.1000000000000000055…
    assert str(coerce(field("decimal"), 0.1)) == "0.1"


def test_trailing_zeros_beyond_scale_are_not_extra_places() -> None:
    assert coerce(field("decimal", scale=2), "12.3400") == Decimal("12.34")


@pytest.mark.parametrize("value", ["1.234", 1.005, "0.001"])
def test_too_many_decimal_places_are_refused(value: Any) -> None:
    problem = refused(field("decimal", scale=2), value)
    assert problem.code == "scale"
    assert "2 decimal places" in problem.message


def test_zero_scale_refuses_fractions() -> None:
    f = field("decimal", precision=5, scale=0)
    assert coerce(f, "42") == Decimal(42)
    assert refused(f, "4.2").code == "scale"


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf", float("nan"), float("inf")])
def test_nan_and_infinity_are_refused(value: Any) -> None:
    assert refused(field("decimal"), value).code == "type"


@pytest.mark.parametrize("value", [True, False, "abc", "", "1,5", ["1"], "1" * 101])
def test_non_numbers_are_refused_as_decimals(value: Any) -> None:
    assert refused(field("decimal"), value).code == "type"


def test_digits_before_the_point_are_limited_by_precision_minus_scale() -> None:
    f = field("decimal", precision=5, scale=2)
    assert coerce(f, "999.99") == Decimal("999.99")
    assert coerce(f, "-999.99") == Decimal("-999.99")
    problem = refused(f, "1000")
    assert problem.code == "range"
    assert "3 digits" in problem.message


def test_decimal_min_and_max_compare_exactly() -> None:
    f = field("decimal", min="0.10", max=5)
    assert coerce(f, "0.10") == Decimal("0.10")
    assert refused(f, "0.09").code == "min"
    assert refused(f, 5.01).code == "max"


@pytest.mark.parametrize("value", ["1E+5000", "-1E+5000", "1E+1000000"])
def test_decimals_with_huge_exponents_are_out_of_range_not_a_crash(value: str) -> None:
    assert refused(field("decimal"), value).code == "range"


@pytest.mark.parametrize(("bounds", "value"), [({"min": 0.1}, "0.1"), ({"max": 0.3}, "0.3")])
def test_decimal_bounds_given_as_json_numbers_include_themselves(
    bounds: dict[str, float], value: str
) -> None:
    # 0.1 as a binary float is not 0.1; the bound must mean the number the admin wrote.
    assert coerce(field("decimal", **bounds), value) == Decimal(value)


# --- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        (" TRUE ", True),
        ("yes", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_booleans_from_json_and_csv_words(value: Any, expected: bool) -> None:
    assert coerce(field("boolean"), value) is expected


@pytest.mark.parametrize("value", [1, 0, 1.0, "y", "", "maybe", []])
def test_numbers_and_other_words_are_not_booleans(value: Any) -> None:
    assert refused(field("boolean"), value).code == "type"


# --- dates -----------------------------------------------------------------------------------


def test_dates_from_iso_text_and_date_objects() -> None:
    f = field("date")
    assert coerce(f, "2024-02-29") == date(2024, 2, 29)
    assert coerce(f, " 2024-01-05 ") == date(2024, 1, 5)
    assert coerce(f, date(2024, 1, 5)) == date(2024, 1, 5)
    assert coerce(f, datetime(2024, 1, 5, 23, 0, tzinfo=UTC)) == date(2024, 1, 5)


@pytest.mark.parametrize("value", ["2023-02-29", "2024-04-31", "2024-13-01", "2024-00-10"])
def test_impossible_dates_are_refused(value: str) -> None:
    problem = refused(field("date"), value)
    assert problem.code == "format"
    assert "real date" in problem.message


@pytest.mark.parametrize(
    "value", ["05/01/2024", "2024-1-5", "20240105", "2024-01-05T00:00", 20240105]
)
def test_dates_not_written_as_yyyy_mm_dd_are_refused(value: Any) -> None:
    assert refused(field("date"), value).code == "format"


def test_date_min_and_max_bound_the_value() -> None:
    f = field("date", min="2024-01-01", max="2024-12-31")
    assert coerce(f, "2024-01-01") == date(2024, 1, 1)
    assert refused(f, "2023-12-31").code == "min"
    assert refused(f, "2025-01-01").code == "max"


# --- datetimes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T14:30:00+02:00",
        "2024-03-01T12:30:00Z",
        "2024-03-01 12:30:00",
        "2024-03-01T12:30",
        "2024-03-01T07:30:00-0500",
        "2024-03-01T12:30:00.000000Z",
    ],
)
def test_datetimes_with_offsets_are_normalised_to_utc(value: str) -> None:
    result = coerce(field("datetime"), value)
    assert result == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_aware_datetime_objects_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    result = coerce(field("datetime"), datetime(2024, 3, 1, 9, 0, tzinfo=tokyo))
    assert result == datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_a_date_becomes_midnight_utc() -> None:
    assert coerce(field("datetime"), date(2024, 3, 1)) == datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2024-03-01", "ISO 8601"),
        ("yesterday", "ISO 8601"),
        ("2024-03-01T25:00:00Z", "real date"),
        ("2023-02-29T10:00:00Z", "real date"),
        ("2024-03-01T10:00:00+2", "ISO 8601"),
        (1709294400, "ISO 8601"),
        ("0001-01-01T01:00:00+01:13", "years 1 to 9999"),
        ("9999-12-31T23:00:00-02:00", "years 1 to 9999"),
    ],
)
def test_malformed_or_impossible_datetimes_are_refused(value: Any, words: str) -> None:
    problem = refused(field("datetime"), value)
    assert problem.code == "format"
    assert words in problem.message


def test_datetime_bounds_compare_instants_across_offsets() -> None:
    f = field("datetime", min="2024-01-01T00:00:00Z")
    assert coerce(f, "2024-01-01T01:00:00+01:00") == datetime(2024, 1, 1, tzinfo=UTC)
    assert refused(f, "2024-01-01T00:59:59+01:00").code == "min"


# --- multipicklists --------------------------------------------------------------------------

COLOURS = [{"value": "red"}, {"value": "green"}, {"value": "blue"}]


def test_multipicklist_keeps_first_occurrence_order_and_drops_repeats() -> None:
    f = field("multipicklist", options=COLOURS)
    assert coerce(f, ["blue", "red", "blue", "red"]) == ["blue", "red"]


def test_multipicklist_from_semicolon_separated_text() -> None:
    f = field("multipicklist", options=COLOURS)
    assert coerce(f, " red ; green;;red ") == ["red", "green"]
    assert coerce(f, "") == []


@pytest.mark.parametrize("value", [["red", "pink"], ["red", 1], [None], "red;pink"])
def test_multipicklist_items_must_be_options(value: Any) -> None:
    problem = refused(field("multipicklist", options=COLOURS), value)
    assert problem.code == "choice"
    assert "red, green, blue" in problem.message


@pytest.mark.parametrize("value", [3, {"red": True}, True])
def test_multipicklist_must_be_a_list(value: Any) -> None:
    assert refused(field("multipicklist", options=COLOURS), value).code == "type"


# --- storage and JSON ------------------------------------------------------------------------


def test_multipicklist_is_stored_as_a_json_array_and_read_back() -> None:
    f = field("multipicklist", options=[{"value": "红"}, {"value": "b"}])
    stored = to_storage(f, ["红", "b"])
    assert json.loads(stored) == ["红", "b"]
    assert "红" in stored
    assert from_storage(f, stored) == ["红", "b"]
    assert to_storage(f, None) is None


def test_other_values_are_stored_unchanged() -> None:
    assert to_storage(field("integer"), 5) == 5
    assert to_storage(field("decimal"), Decimal("1.5")) == Decimal("1.5")


def test_naive_stored_datetimes_are_read_as_utc() -> None:
    result = from_storage(field("datetime"), datetime(2024, 3, 1, 12, 0))
    assert result == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_aware_stored_datetimes_are_read_in_utc() -> None:
    value = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert from_storage(field("datetime"), value).tzinfo is UTC


def test_stored_floats_of_decimal_fields_are_read_as_exact_decimals() -> None:
    assert from_storage(field("decimal"), 12.3) == Decimal("12.3")
    assert from_storage(field("decimal"), 7) == Decimal(7)


def test_decimals_are_json_strings_without_exponent() -> None:
    assert to_json(Decimal("12.50")) == "12.50"
    assert to_json(Decimal("1E+2")) == "100"
    assert to_json(Decimal("-0.05")) == "-0.05"


def test_datetimes_are_json_in_utc_with_z() -> None:
    value = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert to_json(value) == "2024-03-01T12:00:00Z"


def test_dates_are_json_iso_dates() -> None:
    assert to_json(date(2024, 2, 29)) == "2024-02-29"


@pytest.mark.parametrize("value", ["a", 3, True, None, ["a", "b"]])
def test_other_values_are_json_as_they_are(value: Any) -> None:
    assert to_json(value) == value


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("decimal", "1234.56"),
        ("datetime", "2024-03-01T12:30:00Z"),
        ("date", "2024-02-29"),
        ("integer", 42),
        ("boolean", True),
    ],
)
def test_json_output_coerces_back_to_the_same_value(type_name: str, value: Any) -> None:
    f = field(type_name)
    assert to_json(coerce(f, value)) == value
