"""Masked field values: what a role's `"access": "masked"` shows instead of the value."""

from __future__ import annotations

from typing import Any

import pytest

from metacrm.metadata.model import FieldDef
from metacrm.runtime.masking import mask


def of_type(type_name: str) -> FieldDef:
    return FieldDef.from_doc({"name": "f", "type": type_name})


PHONE, EMAIL, TEXT = of_type("phone"), of_type("email"), of_type("text")


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    [
        ("13812345678", PHONE, "138****5678"),
        ("+8613812345678", PHONE, "+86*******5678"),
        ("alice@example.com", EMAIL, "a***@example.com"),
        ("a@example.com", EMAIL, "a***@example.com"),
        # The last @ separates the domain; the local part never shows past its first letter.
        ('"x@y"@example.com', EMAIL, '"***@example.com'),
        ("ABCDEFGHIJ", TEXT, "******GHIJ"),
        ("张三李四王五", TEXT, "**李四王五"),
        ("https://example.com/x", of_type("url"), "*****************om/x"),
        ("ABCDEFGHIJ", None, "******GHIJ"),
    ],
    ids=[
        "phone",
        "phone-with-country-code",
        "email",
        "email-one-letter-local",
        "email-quoted-local",
        "text-keeps-last-four",
        "text-unicode",
        "url",
        "no-field-is-text",
    ],
)
def test_default_masks_by_field_type(value: str, field: FieldDef | None, expected: str) -> None:
    assert mask(value, None, field) == expected


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("1234567", PHONE),  # keeping 3 + 4 would show it whole
        ("12345678", PHONE),  # one starred of eight: less than a third
        ("12345", TEXT),
        ("1234", TEXT),
        ("x", TEXT),
        ("no-at-sign", EMAIL),
        ("@example.com", EMAIL),
    ],
)
def test_values_too_short_to_keep_anything_are_starred_whole(value: str, field: FieldDef) -> None:
    masked = mask(value, None, field)
    assert masked == "*" * len(value)


def test_the_first_length_that_keeps_a_part_stars_at_least_a_third() -> None:
    # Phone keeps 3 + 4: ten characters would star three (< a third of ten), so all;
    # eleven star four.
    assert mask("1234567890", None, PHONE) == "**********"
    assert mask("12345678901", None, PHONE) == "123****8901"
    # Text keeps 4: six characters star two, exactly a third.
    assert mask("abcdef", None, TEXT) == "**cdef"
    assert mask("abcde", None, TEXT) == "*****"


@pytest.mark.parametrize(
    ("how", "value", "expected"),
    [
        ({"keep_start": 2, "keep_end": 2, "char": "#"}, "abcdefgh", "ab####gh"),
        ({"keep_start": 2}, "abcdefgh", "ab******"),
        ({"keep_end": 3}, "abcdefgh", "*****fgh"),
        ({"keep_start": 0, "keep_end": 0}, "abcdefgh", "********"),
        ({}, "abc", "***"),
        ({"char": "•"}, "secret", "••••••"),
        ({"keep_start": 5, "keep_end": 5}, "abcdefghij", "**********"),
        ({"keep_start": 1, "keep_end": 1, "char": "x"}, "0123456789", "0xxxxxxxx9"),
        ("email", "bob@example.org", "b***@example.org"),
    ],
    ids=[
        "start-end-char",
        "start-only",
        "end-only",
        "keep-nothing",
        "empty-spec",
        "custom-char",
        "keep-everything-stars-all",
        "keep-one-each-side",
        "email-on-text-field",
    ],
)
def test_custom_masks(how: Any, value: str, expected: str) -> None:
    assert mask(value, how, TEXT) == expected


def test_a_custom_mask_overrides_the_type_default() -> None:
    assert mask("13812345678", {"keep_end": 2}, PHONE) == "*********78"
    assert mask("alice@example.com", {"keep_start": 1}, EMAIL) == "a" + "*" * 16


@pytest.mark.parametrize("value", [None, 0, 13812345678, 1.5, True, False, [], ["a"], {"a": 1}, ""])
@pytest.mark.parametrize(
    "field", [PHONE, EMAIL, TEXT, None], ids=["phone", "email", "text", "none"]
)
@pytest.mark.parametrize(
    "how", [None, "email", {"keep_start": 1}], ids=["default", "email", "keep"]
)
def test_non_strings_and_empty_strings_are_unchanged(
    value: Any, field: FieldDef | None, how: Any
) -> None:
    assert mask(value, how, field) == value
    assert type(mask(value, how, field)) is type(value)


@pytest.mark.parametrize("length", range(1, 40))
@pytest.mark.parametrize("field", [PHONE, TEXT], ids=["phone", "text"])
def test_a_mask_keeps_the_length_and_never_shows_the_whole_value(
    length: int, field: FieldDef
) -> None:
    value = "".join(str(i % 10) for i in range(length))
    masked = mask(value, None, field)
    assert len(masked) == len(value)
    assert masked != value
    assert masked.count("*") >= -(-length // 3)
