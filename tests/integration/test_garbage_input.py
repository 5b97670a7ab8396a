"""Garbage in, 4xx out (docs/api.md, "HTTP basics": never a 500 for anything a client sent): every
malformed body, value, parameter or header gets a problem+json 4xx, and no write goes through."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api, start_api

RECORDS = "/api/v1/records"
META = "/api/v1/meta/entities"
OPPORTUNITIES = f"{RECORDS}/opportunity"
A_DEAL = f"{OPPORTUNITIES}/{{id}}"  # the seeded record; {id} is filled in per test

TEN_K = "x" * 10_001
TWO_MB = "y" * (2 * 1024 * 1024)
NESTED_TOO_DEEP = "[" * 100_000 + "]" * 100_000
# json.dumps writes float("inf") as Infinity; this stands for the literal 1e400 instead.
E400 = "<1e400>"


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@dataclass(frozen=True)
class Send:
    """One request with a malformed part."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = "application/json"
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def raw(method: str, path: str, text: str | bytes, **kw: Any) -> Send:
    return Send(method, path, text.encode() if isinstance(text, str) else text, **kw)


def doc(method: str, path: str, value: Any, **kw: Any) -> Send:
    return raw(method, path, json.dumps(value).replace(json.dumps(E400), "1e400"), **kw)


def listing(**params: str) -> Send:
    return Send("GET", OPPORTUNITIES, content_type=None, params=params)


def case(case_id: str, send: Send) -> Any:
    return pytest.param(send, id=case_id)


def deal(**values: Any) -> dict[str, Any]:
    return {"name": "Garbage deal", **values}


# ---- bodies that are not a JSON object --------------------------------------------------------

NOT_JSON = {
    "text": "hello there",
    "truncated": '{"name": "x"',
    "empty": "",
    "single-quotes": "{'name': 'x'}",
    "trailing-comma": '{"name": "x",}',
    "comment": '{"name": "x" /* hi */}',
    "not-utf8": b'{"name": "\xff\xfe"}',
    "utf16": '{"name": "x"}'.encode("utf-16"),
    "nan": '{"name": "x", "amount": NaN}',
    "infinity": '{"name": "x", "amount": Infinity}',
    "minus-infinity": '{"name": "x", "probability": -Infinity}',
    "nested-too-deep": NESTED_TOO_DEEP,
    # JSON can spell a lone UTF-16 surrogate, which is no Unicode text: in a value, in a key,
    # a pair in the wrong order, deep inside.
    "lone-surrogate": '{"name": "Acme \\ud800"}',
    "lone-surrogate-key": '{"na\\udc00me": "x"}',
    "reversed-surrogates": '{"name": "\\udc00\\ud800"}',
    "lone-surrogate-deep": '{"name": "x", "label": {"en": [{"a": "\\udfff"}]}}',
    "two-megabytes": json.dumps({"name": TWO_MB}),
}
NOT_AN_OBJECT = {
    "array": [{"name": "x"}],
    "string": "name",
    "number": 42,
    "null": None,
    "true": True,
}
WRONG_CONTENT_TYPE = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]

# ---- record values of the wrong shape ---------------------------------------------------------

BAD_VALUES = {
    "name-number": {"name": 123},
    "name-object": {"name": {"en": "x"}},
    "name-ten-k": {"name": TEN_K},
    "name-nul": {"name": "Acme\x00Corp"},
    "amount-word": {"amount": "lots"},
    "amount-boolean": {"amount": True},
    "amount-1e400": {"amount": E400},
    "amount-1e400-text": {"amount": "1e400"},
    "amount-huge": {"amount": 10**40},
    "amount-nul": {"amount": "12\x00"},
    "probability-text": {"probability": "ten"},
    "probability-fraction": {"probability": 1.5},
    "probability-1e400": {"probability": E400},
    "probability-huge": {"probability": 10**30},
    "stage-unknown": {"stage": "sleeping"},
    "stage-list": {"stage": ["won"]},
    "stage-nul": {"stage": "won\x00"},
    "stage-ten-k": {"stage": TEN_K},
    "tags-string": {"tags": "hot"},
    "tags-numbers": {"tags": [1, 2]},
    "tags-nul": {"tags": ["hot\x00"]},
    "tags-deep": {"tags": nested(500)},
    "closed-text": {"closed": "yes"},
    "closed-number": {"closed": 1},
    "close-date-feb-30": {"close_date": "2023-02-30"},
    "close-date-month-13": {"close_date": "2024-13-01"},
    "close-date-day-0": {"close_date": "2024-01-00"},
    "close-date-year-0": {"close_date": "0000-01-01"},
    "close-date-five-digit-year": {"close_date": "99999-01-01"},
    "close-date-number": {"close_date": 20230101},
    "close-date-nul": {"close_date": "2024-01-01\x00"},
    "email-ten-k": {"email": f"{TEN_K}@example.com"},
    "email-nul": {"email": "a\x00@example.com"},
    "account-number": {"account": 42},
    "account-unknown": {"account": "01NOSUCHACCOUNT0000000000"},
    "account-nul": {"account": "01\x00"},
    "owner-number": {"owner": 7},
    "owner-unknown": {"owner": "01NOSUCHUSER00000000000000"},
    "owner-nul": {"owner": "01\x00"},
    "unknown-field": {"nonsense": 1},
    "unknown-field-nul-name": {"a\x00b": 1},
    "unknown-fields-many": {f"field_{i}": i for i in range(2_000)},
    "autonumber-set": {"number": "OPP-1"},
}


def record_cases(method: str, path: str) -> list[Any]:
    verb = method.lower()
    cases = [
        case(f"{verb}-record-{name}", raw(method, path, text)) for name, text in NOT_JSON.items()
    ]
    cases += [
        case(f"{verb}-record-{name}", doc(method, path, value))
        for name, value in NOT_AN_OBJECT.items()
    ]
    cases += [
        case(
            f"{verb}-record-as-{media.split('/')[1]}", doc(method, path, deal(), content_type=media)
        )
        for media in WRONG_CONTENT_TYPE
    ]
    cases += [
        case(f"{verb}-record-{name}", doc(method, path, deal(**values)))
        for name, values in BAD_VALUES.items()
    ]
    return cases


BAD_IF_MATCH = {
    "word": "abc",
    "quoted-word": '"abc"',
    "unquoted": "1",
    "negative": '"-1"',
    "too-long": '"9999999999999999999999"',
    "two-stale-tags": '"7", "8"',
    "stale": '"7"',
    # The seeded record is at version 1, but a weak tag never matches (RFC 9110, 13.1.1).
    "weak": 'W/"1"',
    "weak-and-stale": 'W/"1", "7"',
}

# ---- metadata documents ------------------------------------------------------------------------

GOOD_FIELD = {"name": "discount", "type": "integer"}
GADGET = {
    "name": "gadget",
    "label": {"en": "Gadget"},
    "fields": [{"name": "title", "type": "text"}],
}
# Top-level parts of an entity document, each replacing the good one.
BAD_ENTITY_PARTS = {
    "name-number": {"name": 1},
    "name-nul": {"name": "gad\x00get"},
    "name-ten-k": {"name": TEN_K},
    # A string is short for {"en": …}; an empty or a non-text label is not.
    "label-empty-string": {"label": ""},
    "label-number": {"label": 7},
    "label-nul": {"label": {"en": "Gad\x00get"}},
    "fields-string": {"fields": "name"},
    "fields-numbers": {"fields": [1, 2]},
    "fields-deep": {"fields": nested(500)},
    "title-field-unknown": {"title_field": "nope"},
    "rules-string": {"validation_rules": "no"},
    "rule-syntax": {
        "validation_rules": [{"name": "r", "condition": "((", "message": {"en": "no"}}]
    },
    "rule-nul": {
        "validation_rules": [{"name": "r", "condition": "id !=\x00 null", "message": {"en": "no"}}]
    },
    "unknown-key": {"colour": "red"},
}
# Bad fields, each added to a good entity document.
BAD_NEW_FIELDS = {
    "field-type-unknown": {"name": "extra", "type": "blob"},
    "field-name-nul": {"name": "ex\x00tra", "type": "text"},
    "field-max-length-1e400": {"name": "extra", "type": "text", "max_length": E400},
    "field-max-length-huge": {"name": "extra", "type": "text", "max_length": 10**30},
    "field-default-feb-30": {"name": "extra", "type": "date", "default": "2023-02-30"},
    "field-default-month-13": {"name": "extra", "type": "date", "default": "2024-13-01"},
    "field-min-text": {"name": "extra", "type": "integer", "min": "zero"},
    "field-options-deep": {"name": "extra", "type": "picklist", "options": nested(500)},
    "field-lookup-nowhere": {"name": "extra", "type": "lookup", "target": "nope"},
}


def bad_entities(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    documents = {name: {**base, **part} for name, part in BAD_ENTITY_PARTS.items()}
    for name, bad in BAD_NEW_FIELDS.items():
        documents[name] = {**base, "fields": [*base["fields"], bad]}
    return documents


BAD_FIELDS = {
    "name-number": {"name": 5, "type": "text"},
    "name-nul": {"name": "dis\x00count", "type": "integer"},
    "name-ten-k": {"name": TEN_K, "type": "integer"},
    "type-unknown": {"name": "discount", "type": "money"},
    "type-list": {"name": "discount", "type": ["integer"]},
    "min-1e400": {"name": "discount", "type": "integer", "min": E400},
    "max-huge": {"name": "discount", "type": "integer", "max": 10**40},
    "default-feb-30": {"name": "due", "type": "date", "default": "2023-02-30"},
    "default-nul": {"name": "note", "type": "text", "default": "a\x00b"},
    "reserved-name": {"name": "version", "type": "integer"},
    "unknown-key": {**GOOD_FIELD, "colour": "red"},
}
BAD_FIELD_CHANGES = {
    "type-unknown": {"type": "money"},
    "label-empty-string": {"label": ""},
    "label-list": {"label": ["Amount"]},
    "required-text": {"required": "yes"},
    "min-1e400": {"min": E400},
    "max-length-nul": {"max_length": "1\x00"},
    "unknown-key": {"colour": "red"},
}


def meta_body_cases(prefix: str, method: str, path: str) -> list[Any]:
    cases = [case(f"{prefix}-{name}", raw(method, path, text)) for name, text in NOT_JSON.items()]
    cases += [
        case(f"{prefix}-{name}", doc(method, path, value)) for name, value in NOT_AN_OBJECT.items()
    ]
    cases.append(
        case(f"{prefix}-as-text", doc(method, path, GOOD_FIELD, content_type="text/plain"))
    )
    return cases


def opportunity_with(**changes: Any) -> dict[str, Any]:
    return {**OPPORTUNITY, **changes}


WRITES = [
    *record_cases("POST", OPPORTUNITIES),
    *record_cases("PATCH", A_DEAL),
    *[
        case(
            f"patch-if-match-{name}", doc("PATCH", A_DEAL, {"name": "x"}, headers={"If-Match": tag})
        )
        for name, tag in BAD_IF_MATCH.items()
    ],
    *[
        case(
            f"delete-if-match-{name}", Send("DELETE", A_DEAL, None, None, headers={"If-Match": tag})
        )
        for name, tag in BAD_IF_MATCH.items()
    ],
    case("post-record-unknown-entity", doc("POST", f"{RECORDS}/nope", deal())),
    case("post-record-entity-ten-k", doc("POST", f"{RECORDS}/{TEN_K}", deal())),
    case("patch-record-unknown-id", doc("PATCH", f"{OPPORTUNITIES}/nope", deal())),
    case("patch-record-id-ten-k", doc("PATCH", f"{OPPORTUNITIES}/{TEN_K}", deal())),
    case("patch-record-id-nul", doc("PATCH", f"{OPPORTUNITIES}/01%00", deal())),
    case("patch-record-id-not-utf8", doc("PATCH", f"{OPPORTUNITIES}/01%ED%A0%80", deal())),
    case("delete-record-id-nul", Send("DELETE", f"{OPPORTUNITIES}/01%00", None, None)),
    case("restore-record-id-nul", Send("POST", f"{OPPORTUNITIES}/01%00/restore", None, None)),
    case("restore-record-not-deleted", Send("POST", f"{A_DEAL}/restore", None, None)),
    case("restore-record-unknown", Send("POST", f"{OPPORTUNITIES}/nope/restore", None, None)),
    *meta_body_cases("post-entity", "POST", META),
    *[
        case(f"post-entity-{name}", doc("POST", META, value))
        for name, value in bad_entities(GADGET).items()
    ],
    case("post-entity-existing", doc("POST", META, ACCOUNT)),
    *meta_body_cases("put-entity", "PUT", f"{META}/opportunity"),
    *[
        case(f"put-entity-{name}", doc("PUT", f"{META}/opportunity", value))
        for name, value in bad_entities(OPPORTUNITY).items()
    ],
    case(
        "put-entity-version-text", doc("PUT", f"{META}/opportunity", opportunity_with(version="1"))
    ),
    case(
        "put-entity-version-1e400",
        doc("PUT", f"{META}/opportunity", opportunity_with(version=E400)),
    ),
    case(
        "put-entity-version-huge",
        doc("PUT", f"{META}/opportunity", opportunity_with(version=10**30)),
    ),
    case(
        "put-entity-stale-version", doc("PUT", f"{META}/opportunity", opportunity_with(version=99))
    ),
    case("put-entity-renamed", doc("PUT", f"{META}/opportunity", opportunity_with(name="deal"))),
    case("put-entity-unknown", doc("PUT", f"{META}/nope", opportunity_with(name="nope"))),
    case(
        "put-entity-dry-run-maybe",
        doc("PUT", f"{META}/opportunity", OPPORTUNITY, params={"dry_run": "maybe"}),
    ),
    *meta_body_cases("post-field", "POST", f"{META}/opportunity/fields"),
    *[
        case(f"post-field-{name}", doc("POST", f"{META}/opportunity/fields", value))
        for name, value in BAD_FIELDS.items()
    ],
    case(
        "post-field-existing",
        doc("POST", f"{META}/opportunity/fields", {"name": "amount", "type": "integer"}),
    ),
    case("post-field-unknown-entity", doc("POST", f"{META}/nope/fields", GOOD_FIELD)),
    *meta_body_cases("patch-field", "PATCH", f"{META}/opportunity/fields/amount"),
    *[
        case(f"patch-field-{name}", doc("PATCH", f"{META}/opportunity/fields/amount", value))
        for name, value in BAD_FIELD_CHANGES.items()
    ],
    case(
        "patch-field-unknown", doc("PATCH", f"{META}/opportunity/fields/nope", {"required": True})
    ),
    case(
        "patch-field-name-nul",
        doc("PATCH", f"{META}/opportunity/fields/amo%00unt", {"required": True}),
    ),
    case("delete-field-name-nul", Send("DELETE", f"{META}/opportunity/fields/am%00", None, None)),
    case("delete-field-unknown", Send("DELETE", f"{META}/opportunity/fields/nope", None, None)),
    case(
        "delete-field-purge-maybe",
        Send("DELETE", f"{META}/opportunity/fields/email", None, None, params={"purge": "maybe"}),
    ),
    case(
        "restore-version-word", Send("POST", f"{META}/opportunity/versions/abc/restore", None, None)
    ),
    case(
        "restore-version-zero", Send("POST", f"{META}/opportunity/versions/0/restore", None, None)
    ),
    case(
        "restore-version-unknown",
        Send("POST", f"{META}/opportunity/versions/99/restore", None, None),
    ),
    case(
        "restore-version-huge",
        Send("POST", f"{META}/opportunity/versions/99999999999999999999/restore", None, None),
    ),
    case(
        "restore-version-unknown-entity",
        Send("POST", f"{META}/nope/versions/1/restore", None, None),
    ),
    case(
        "restore-version-entity-nul",
        Send("POST", f"{META}/opp%00ortunity/versions/1/restore", None, None),
    ),
]

READS = [
    case("list-limit-zero", listing(limit="0")),
    case("list-limit-501", listing(limit="501")),
    case("list-limit-word", listing(limit="abc")),
    case("list-limit-negative", listing(limit="-1")),
    case("list-limit-exponent", listing(limit="1e3")),
    case("list-limit-huge", listing(limit="9" * 40)),
    case("list-limit-nul", listing(limit="5\x00")),
    case("list-filter-syntax", listing(filter="((amount >")),
    case("list-filter-unknown-field", listing(filter="nope == 1")),
    case("list-filter-wrong-type", listing(filter='amount > "lots"')),
    case("list-filter-nul", listing(filter='name == "a\x00b"')),
    case("list-filter-escaped-surrogate", listing(filter='name == "\\ud800"')),
    # Percent-encoded bytes that are no UTF-8 (a surrogate's encoding) decode as U+FFFD.
    case("list-sort-not-utf8", Send("GET", f"{OPPORTUNITIES}?sort=%ED%A0%80", content_type=None)),
    case(
        "list-fields-not-utf8", Send("GET", f"{OPPORTUNITIES}?fields=%ED%A0%80", content_type=None)
    ),
    case("list-entity-not-utf8", Send("GET", f"{RECORDS}/opp%ED%A0%80", content_type=None)),
    case("get-record-id-not-utf8", Send("GET", f"{OPPORTUNITIES}/01%ED%A0%80", content_type=None)),
    case("get-entity-not-utf8", Send("GET", f"{META}/opp%ED%A0%80", content_type=None)),
    case("list-filter-nul-outside-string", listing(filter="amount >\x00 1")),
    case("list-filter-ten-k", listing(filter=f'name == "{TEN_K}"')),
    case("list-filter-1e400", listing(filter="amount > 1e400")),
    case("list-filter-huge-integer", listing(filter=f"probability > {'9' * 40}")),
    case("list-filter-feb-30", listing(filter='close_date == date("2023-02-30")')),
    case("list-filter-month-13", listing(filter='close_date < date("2024-13-01")')),
    case("list-filter-deep", listing(filter="(" * 4_000 + "1" + ")" * 4_000)),
    case("list-filter-unknown-function", listing(filter="nope(amount) > 1")),
    case("list-sort-unknown", listing(sort="nope")),
    case("list-sort-nul", listing(sort="name\x00")),
    case("list-sort-dash", listing(sort="-")),
    case("list-sort-twice", listing(sort="name,-name")),
    case("list-sort-ten-k", listing(sort=TEN_K)),
    case("list-q-nul", listing(q="Acme\x00")),
    case("list-q-ten-k", listing(q=TEN_K)),
    case("list-cursor-word", listing(cursor="abc")),
    case("list-cursor-base64-junk", listing(cursor="eyJpZCI6ICJ4In0")),
    case("list-cursor-nul", listing(cursor="abc\x00")),
    case("list-cursor-ten-k", listing(cursor=TEN_K)),
    case("list-count-maybe", listing(count="maybe")),
    case("list-fields-unknown", listing(fields="nope")),
    case("list-fields-nul", listing(fields="name\x00")),
    case("list-expand-not-a-lookup", listing(expand="name")),
    case("list-expand-unknown", listing(expand="nope")),
    case("list-unknown-entity", Send("GET", f"{RECORDS}/nope", content_type=None)),
    case("list-entity-nul", Send("GET", f"{RECORDS}/opp%00ortunity", content_type=None)),
    case("get-record-unknown-entity", Send("GET", f"{RECORDS}/nope/x", content_type=None)),
    case("get-record-unknown-id", Send("GET", f"{OPPORTUNITIES}/nope", content_type=None)),
    case("get-record-id-nul", Send("GET", f"{OPPORTUNITIES}/01%00", content_type=None)),
    case("history-record-id-nul", Send("GET", f"{OPPORTUNITIES}/01%00/history", content_type=None)),
    case("get-record-id-ten-k", Send("GET", f"{OPPORTUNITIES}/{TEN_K}", content_type=None)),
    case(
        "get-record-fields-unknown",
        Send("GET", A_DEAL, content_type=None, params={"fields": "nope,name"}),
    ),
    case(
        "get-record-expand-not-a-lookup",
        Send("GET", A_DEAL, content_type=None, params={"expand": "stage"}),
    ),
    case("history-unknown-id", Send("GET", f"{OPPORTUNITIES}/nope/history", content_type=None)),
    case("get-entity-unknown", Send("GET", f"{META}/nope", content_type=None)),
    case("get-entity-nul", Send("GET", f"{META}/opp%00ortunity", content_type=None)),
    case("entity-versions-unknown", Send("GET", f"{META}/nope/versions", content_type=None)),
]


# ---- the tests -------------------------------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def crm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, str]]:
    """One CRM per database for the whole module, like the `api` fixture's: garbage must not
    change anything, and every test checks that, so the tests can share it and stay fast."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    database = f"t_garbage_input_{secrets.token_hex(4)}"
    if server is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('garbage')}/test.db"
    else:
        url = server.create_database(database)
    api = start_api(url)
    try:
        with api.client:
            api.make_entity(ACCOUNT)
            api.make_entity(OPPORTUNITY)
            acme = api.post(f"{RECORDS}/account", {"name": "Acme"}).json()
            first = api.post(OPPORTUNITIES, deal(account=acme["id"], amount="10.00")).json()
            api.post(OPPORTUNITIES, {"name": "Second deal", "close_date": "2030-01-01"})
            yield api, first["id"]
    finally:
        api.engine.dispose()
        if server is not None:
            server.drop_database(database)


def send(api: Api, request: Send, record_id: str) -> httpx.Response:
    headers = dict(request.headers)
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    return api.client.request(
        request.method,
        request.path.replace("{id}", record_id),
        content=request.body,
        # No params at all when there are none, so a query written into the path stays.
        params=request.params or None,
        headers=api.headers(**headers),
    )


def count(api: Api, entity: str) -> int:
    return api.get(f"{RECORDS}/{entity}", params={"count": "true", "limit": "1"}).json()["count"]


def state(api: Api, record_id: str) -> dict[str, Any]:
    """Everything a garbage request could have changed: record counts, the seeded record and the
    metadata versions."""
    return {
        "counts": {entity: count(api, entity) for entity in ("account", "opportunity")},
        "record": api.get(f"{OPPORTUNITIES}/{record_id}").json(),
        "entities": [(e["name"], e["version"], e["fields"]) for e in api.get(META).json()["data"]],
    }


def assert_problem(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == response.status_code
    assert isinstance(problem["detail"], str) and problem["detail"], problem


@pytest.mark.parametrize("request_", WRITES)
def test_garbage_writes_get_a_4xx_problem_and_change_nothing(
    crm: tuple[Api, str], request_: Send
) -> None:
    api, record_id = crm
    before = state(api, record_id)
    assert_problem(send(api, request_, record_id))
    assert state(api, record_id) == before


@pytest.mark.parametrize("request_", READS)
def test_garbage_list_parameters_and_names_get_a_4xx_problem(
    crm: tuple[Api, str], request_: Send
) -> None:
    api, record_id = crm
    assert_problem(send(api, request_, record_id))


def test_a_cursor_from_another_sort_is_rejected(crm: tuple[Api, str]) -> None:
    api, _ = crm
    page = api.get(OPPORTUNITIES, params={"sort": "name", "limit": "1"}).json()
    assert page["next_cursor"]
    response = api.get(
        OPPORTUNITIES, params={"sort": "-amount", "limit": "1", "cursor": page["next_cursor"]}
    )
    assert_problem(response)


def test_a_tampered_cursor_is_rejected(crm: tuple[Api, str]) -> None:
    api, _ = crm
    cursor = api.get(OPPORTUNITIES, params={"limit": "1"}).json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert_problem(api.get(OPPORTUNITIES, params={"limit": "1", "cursor": tampered}))
