"""Parsing If-Match (RFC 9110, 13.1.1): `*`, or a list of entity tags compared strongly."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from metacrm.platform.errors import BadRequest
from metacrm.runtime.api.http import IfMatch, if_match


def parsed(value: str | None) -> IfMatch | None:
    headers = [] if value is None else [(b"if-match", value.encode("latin-1"))]
    return if_match(Request({"type": "http", "headers": headers}))


def test_no_header_asks_nothing() -> None:
    assert parsed(None) is None


def test_one_strong_tag_names_one_version() -> None:
    found = parsed(' "3" ')
    assert found is not None
    assert found.single_version == 3
    assert found.matches(3) and not found.matches(4)


@pytest.mark.parametrize("header", ['W/"3"', ' W/"3" ', 'W/"3", W/"4"'])
def test_a_weak_tag_never_matches(header: str) -> None:
    found = parsed(header)
    assert found is not None
    assert found.single_version is None
    assert not any(found.matches(v) for v in range(10))
    assert "weak" in found.refusal("deal 1", 3).detail


def test_a_list_matches_when_one_of_its_strong_tags_does() -> None:
    found = parsed('"1", W/"2", "abc", "0003", "4",')
    assert found is not None
    assert found.single_version is None
    assert [v for v in range(6) if found.matches(v)] == [1, 4]


def test_a_strong_tag_that_is_no_version_matches_nothing() -> None:
    for header in ['"abc"', '"-1"', '"01"', '"9999999999999999999999"', '""', '"a,b"']:
        found = parsed(header)
        assert found is not None, header
        assert found.single_version is None
        assert not any(found.matches(v) for v in (0, 1, 9)), header


def test_star_matches_any_version() -> None:
    found = parsed("*")
    assert found is not None and found.any and found.matches(42)


def test_empty_list_elements_are_allowed() -> None:
    found = parsed(' , "2" ,, ')
    assert found is not None and found.matches(2)


@pytest.mark.parametrize(
    "header", ["", "abc", "3", '"3" "4"', 'w/"3"', 'W/ "3"', '"3', '*, "3"', ",", '"3";x']
)
def test_anything_else_is_a_bad_request(header: str) -> None:
    with pytest.raises(BadRequest):
        parsed(header)


def test_the_refusal_says_the_current_version() -> None:
    found = parsed('"1", "2"')
    assert found is not None
    refusal = found.refusal("deal 01H", 5)
    assert refusal.status == 412
    assert refusal.problem()["current_version"] == 5
    assert '"5"' in refusal.detail and "weak" not in refusal.detail
