"""The list query parameter parsers: good input parsed, bad input a 400 saying what is wrong."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from metacrm.platform.errors import BadRequest
from metacrm.runtime.api.params import (
    MAX_PARAM_LENGTH,
    parse_bool,
    parse_limit,
    parse_list_query,
    parse_names,
    parse_sort,
)
from metacrm.runtime.listing import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, SortKey

# --- sort ------------------------------------------------------------------------------------


def test_sort_reads_direction_per_field() -> None:
    assert parse_sort("-amount,name") == (SortKey("amount", True), SortKey("name", False))


def test_sort_allows_spaces_and_an_explicit_plus() -> None:
    assert parse_sort(" +name , -close_date ") == (SortKey("name"), SortKey("close_date", True))


@pytest.mark.parametrize("raw", [None, ""])
def test_missing_sort_is_empty(raw: str | None) -> None:
    assert parse_sort(raw) == ()


def test_sort_by_id_is_dropped_because_id_always_breaks_ties() -> None:
    assert parse_sort("-id,name,id") == (SortKey("name"),)


@pytest.mark.parametrize(
    "raw", ["Amount", "amount,", ",amount", "-", "amount name", "1st", "a.b", "amount;drop", "é"]
)
def test_sort_with_a_bad_name_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_sort(raw)
    assert caught.value.detail.startswith("sort:")


@pytest.mark.parametrize("raw", ["name,name", "name,-name", "-amount,+amount"])
def test_sort_by_the_same_field_twice_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest, match="twice"):
        parse_sort(raw)


# --- limit -----------------------------------------------------------------------------------


def test_missing_limit_is_the_default() -> None:
    assert parse_limit(None) == DEFAULT_LIMIT == 50


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("50", 50), ("500", 500), ("007", 7)])
def test_limit_within_range_is_accepted(raw: str, expected: int) -> None:
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "501", "-1", "+5", "1.5", "ten", "", " 5", "1e2", "9" * 30])
def test_limit_outside_range_or_not_a_number_is_a_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest, match=f"1 to {MAX_LIMIT}"):
        parse_limit(raw)


@pytest.mark.parametrize("raw", ["²", "1²", "①"])
def test_limit_with_unicode_digit_characters_is_a_bad_request(raw: str) -> None:
    # str.isdigit() is true for these, but int() can't read them: must be a 400, never a 500.
    with pytest.raises(BadRequest):
        parse_limit(raw)


# --- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "1"])
def test_true_words(raw: str) -> None:
    assert parse_bool(raw, "count") is True


@pytest.mark.parametrize("raw", ["false", "FALSE", "0", None])
def test_false_words_and_absence(raw: str | None) -> None:
    assert parse_bool(raw, "count") is False


@pytest.mark.parametrize("raw", ["yes", "", "2", "t", "truee"])
def test_other_words_are_a_bad_request_naming_the_parameter(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"^count must be true or false"):
        parse_bool(raw, "count")


# --- names -----------------------------------------------------------------------------------


def test_names_are_split_on_commas_and_trimmed() -> None:
    assert parse_names(" name, amount ,,account ", "fields") == ("name", "amount", "account")


def test_no_names_is_empty() -> None:
    assert parse_names(" , ", "fields") == ()


@pytest.mark.parametrize("raw", ["Name", "name,amount-x", "a b", "account.name", "_x"])
def test_bad_names_are_a_bad_request_naming_the_parameter(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"^expand: "):
        parse_names(raw, "expand")


# --- the whole query -------------------------------------------------------------------------


def test_empty_query_gives_the_defaults() -> None:
    assert parse_list_query(QueryParams("")) == ListQuery()


def test_every_parameter_is_parsed() -> None:
    params = QueryParams(
        {
            "filter": 'stage == "won"',
            "sort": "-amount,name",
            "limit": "10",
            "cursor": "abc",
            "fields": "name,amount",
            "expand": "account",
            "q": "acme",
            "count": "true",
        }
    )
    assert parse_list_query(params) == ListQuery(
        filter='stage == "won"',
        sort=(SortKey("amount", True), SortKey("name")),
        limit=10,
        cursor="abc",
        fields=("name", "amount"),
        expand=("account",),
        q="acme",
        count=True,
    )


def test_empty_values_count_as_absent() -> None:
    query = parse_list_query(QueryParams("filter=&cursor=&q=&fields=&expand=&sort="))
    assert query == ListQuery()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("limit=0", "limit"),
        ("sort=Bad", "sort"),
        ("fields=a,B", "fields"),
        ("expand=x.y", "expand"),
        ("count=maybe", "count"),
    ],
)
def test_a_bad_parameter_makes_the_query_a_bad_request(query: str, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse_list_query(QueryParams(query))


def test_overlong_parameter_is_a_bad_request() -> None:
    params = QueryParams({"filter": "x" * (MAX_PARAM_LENGTH + 1)})
    with pytest.raises(BadRequest, match="filter is longer"):
        parse_list_query(params)


def test_parameter_at_the_length_limit_is_accepted() -> None:
    value = "x" * MAX_PARAM_LENGTH
    assert parse_list_query(QueryParams({"q": value})).q == value


def test_overlong_unknown_parameter_is_also_refused() -> None:
    with pytest.raises(BadRequest):
        parse_list_query(QueryParams({"other": "x" * (MAX_PARAM_LENGTH + 1)}))


@pytest.mark.parametrize("key", ["filter", "q", "cursor"])
def test_nul_character_in_a_parameter_is_a_bad_request(key: str) -> None:
    with pytest.raises(BadRequest, match="NUL"):
        parse_list_query(QueryParams({key: "a\x00b"}))
