"""Odd text in every kind of body (docs/api.md, "HTTP basics": JSON in UTF-8, never a 500 for
anything a client sent), on SQLite and PostgreSQL.

Generated text mixes lone and reversed UTF-16 surrogates (sent as the `\\ud800` escapes JSON
allows and UTF-8 can't carry), NUL, characters beyond the BMP, direction marks, byte order
marks, noncharacters and control characters, and lands in an entity's label and its keys, a
field's label, a validation rule's message, a record, an org unit, a user's name and password,
a webhook's name and a role's label. The laws: no answer is a 5xx; a lone surrogate is a 400
naming its place and changes nothing; any other refusal changes nothing; text that is accepted
reads back as it was sent.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Api, start_api
from hypothesis import given, note, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from metacrm.runtime.api.app import ROUTES

IN_CI = os.environ.get("CI") == "true"
MAX_EXAMPLES = int(os.environ.get("BODY_TEXT_EXAMPLES", "40" if IN_CI else "12"))

V1 = "/api/v1"
META = f"{V1}/meta/entities"
BASE = "note"
NOTES = f"{V1}/records/{BASE}"

PIECES = [
    "\ud800",  # lone high surrogate
    "\udbff",
    "\udc00",  # lone low surrogate
    "\udfff",
    "\udc00\ud800",  # a pair in the wrong order: two lone surrogates
    "\ud83d\ude00",  # a pair in the right order: JSON joins it into 😀
    "😀",
    "𝄞",
    "\x00",
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte order mark
    "\uffff",  # noncharacters
    "\ufffe",
    "\u0301",  # a combining accent with nothing to combine with
    "\u2028",  # line separator
    "\x01",
    "\x7f",
    "\t",
    "\n",
    " ",
    "\\",
    '"',
    "中文",
    "é",
    "a",
]
odd_text = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("".join)
names = (f"t{n}" for n in itertools.count())


def as_received(text: str) -> str:
    """The string the server decodes from the JSON we send (a right-order pair joins up)."""
    return json.loads(json.dumps(text))


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def send(api: Api, method: str, path: str, body: Any) -> httpx.Response:
    # json.dumps escapes every non-ASCII character, so a lone surrogate goes out as "\ud800":
    # exactly what a hostile client sends.
    return api.client.request(
        method,
        path,
        content=json.dumps(body).encode("ascii"),
        headers=api.headers(**{"Content-Type": "application/json"}),
    )


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class Case:
    """One place for text in one kind of body."""

    # (method, path, body) for a text and a fresh name.
    request: Callable[[Api, str, str], tuple[str, str, Any]]
    # Where a refusal of bad text must point.
    pointer: str
    # The text as it reads back after a successful write (given its fresh name).
    read_back: Callable[[Api, httpx.Response, str], Any]
    # What the text becomes when stored (some places trim).
    stored: Callable[[str], Any] = lambda text: text
    # Whether text without lone surrogates must be accepted here.
    accepts: Callable[[str], bool] = lambda text: "\x00" not in text
    # What else than the list of entities a write here could change.
    touches: tuple[str, ...] = ("base",)


def entity_doc(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": {"en": "Odd"},
        "fields": [{"name": "title", "type": "text"}],
        **extra,
    }


def entity(api: Api, name: str) -> dict[str, Any]:
    return ok(api.get(f"{META}/{name}"))


def field_of(api: Api, name: str) -> dict[str, Any]:
    return next(f for f in entity(api, BASE)["fields"] if f["name"] == name)


def base_with_rule(api: Api, message: str) -> dict[str, Any]:
    doc = entity(api, BASE)
    doc.pop("plan", None)
    rule = {"name": "not_x", "condition": 'name != "x"', "message": message}
    return {**doc, "validation_rules": [rule]}


def first_note(api: Api) -> str:
    return ok(api.get(NOTES, params={"limit": "1"}))["data"][0]["id"]


CASES = {
    "entity-label": Case(
        lambda api, text, name: ("POST", META, entity_doc(name, label={"en": text})),
        "/label/en",
        lambda api, _r, name: entity(api, name)["label"]["en"],
    ),
    "entity-label-key": Case(
        lambda api, text, name: ("POST", META, entity_doc(name, label={"en": "Odd", text: "x"})),
        "/label",
        lambda api, _r, name: sorted(entity(api, name)["label"]),
        stored=lambda text: sorted(["en", text]),
        # A locale key is a language tag; none of the odd text is one.
        accepts=lambda text: False,
    ),
    "field-label": Case(
        lambda api, text, name: (
            "POST",
            f"{META}/{BASE}/fields",
            {"name": name, "type": "text", "label": {"en": text}},
        ),
        "/label/en",
        lambda api, _r, name: field_of(api, name)["label"]["en"],
    ),
    "field-help-as-string": Case(
        lambda api, text, _name: ("PATCH", f"{META}/{BASE}/fields/name", {"help": text}),
        "/help",
        lambda api, _r, _name: field_of(api, "name")["help"],
        stored=lambda text: {"en": text},
    ),
    "rule-message-as-string": Case(
        lambda api, text, _name: ("PUT", f"{META}/{BASE}", base_with_rule(api, text)),
        "/validation_rules/0/message",
        lambda api, _r, _name: entity(api, BASE)["validation_rules"][0]["message"],
        stored=lambda text: {"en": text},
    ),
    "record-create": Case(
        lambda api, text, _name: ("POST", NOTES, {"name": text}),
        "/name",
        lambda api, response, _name: ok(api.get(f"{NOTES}/{response.json()['id']}"))["name"],
        touches=("notes",),
    ),
    "record-update": Case(
        lambda api, text, _name: ("PATCH", f"{NOTES}/{first_note(api)}", {"name": text}),
        "/name",
        lambda api, response, _name: ok(api.get(f"{NOTES}/{response.json()['id']}"))["name"],
        touches=("notes",),
    ),
    "org-unit-label": Case(
        lambda api, text, name: ("POST", f"{V1}/org-units", {"name": name, "label": text}),
        "/label",
        lambda api, response, _name: ok(api.get(f"{V1}/org-units/{response.json()['id']}"))[
            "label"
        ],
        touches=("units",),
    ),
    "user-name": Case(
        lambda api, text, name: (
            "POST",
            f"{V1}/users",
            {"email": f"{name}@example.com", "password": "long-enough", "name": text},
        ),
        "/name",
        lambda api, response, _name: ok(api.get(f"{V1}/users/{response.json()['id']}"))["name"],
        touches=("users",),
    ),
    "user-password": Case(
        lambda api, text, name: (
            "POST",
            f"{V1}/users",
            {"email": f"{name}@example.com", "password": f"long-enough-{text}", "name": "U"},
        ),
        "/password",
        lambda api, response, _name: ok(api.get(f"{V1}/users/{response.json()['id']}"))["name"],
        stored=lambda _text: "U",
        # Passwords are hashed, never stored as text: NUL is as good as any character.
        accepts=lambda _text: True,
        touches=("users",),
    ),
    "webhook-name": Case(
        lambda api, text, _name: (
            "POST",
            f"{V1}/webhooks",
            {"name": text, "url": "https://hooks.example.com/in", "events": ["*"]},
        ),
        "/name",
        lambda api, response, _name: ok(api.get(f"{V1}/webhooks/{response.json()['id']}"))["name"],
        stored=str.strip,
        accepts=lambda text: "\x00" not in text and text.strip() != "",
        touches=("webhooks",),
    ),
    "role-label": Case(
        lambda api, text, name: ("POST", f"{V1}/meta/roles", {"name": name, "label": text}),
        "/label",
        lambda api, _r, name: ok(api.get(f"{V1}/meta/roles/{name}"))["label"],
        stored=lambda text: {"en": text},
        touches=("roles",),
    ),
}


STATE: dict[str, Callable[[Api], Any]] = {
    "entities": lambda api: ok(api.get(META))["data"],
    "base": lambda api: entity(api, BASE),
    "notes": lambda api: ok(api.get(NOTES, params={"limit": "500"}))["data"],
    "units": lambda api: ok(api.get(f"{V1}/org-units"))["data"],
    "users": lambda api: ok(api.get(f"{V1}/users"))["data"],
    "webhooks": lambda api: ok(api.get(f"{V1}/webhooks"))["data"],
    "roles": lambda api: ok(api.get(f"{V1}/meta/roles"))["data"],
}


def state(api: Api, parts: tuple[str, ...]) -> dict[str, Any]:
    """What a refused write could have changed (the metadata stamp moves with any metadata)."""
    return {part: STATE[part](api) for part in ("entities", *parts)}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def crm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app per database for the module: every example checks what it changed."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    database = f"t_body_text_{secrets.token_hex(4)}"
    if server is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('body-text')}/test.db"
    else:
        url = server.create_database(database)
    api = start_api(url)
    try:
        with api.client:
            api.make_entity(
                {
                    "name": BASE,
                    "label": {"en": "Note"},
                    "title_field": "name",
                    "fields": [{"name": "name", "type": "text"}],
                }
            )
            assert api.post(NOTES, {"name": "first"}).status_code == 201
            yield api
    finally:
        api.engine.dispose()
        if server is not None:
            server.drop_database(database)


@pytest.mark.slow
@pytest.mark.parametrize("case_name", list(CASES))
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None)
@given(text=odd_text)
def test_odd_text_is_refused_with_its_place_or_reads_back_as_sent(
    crm: Api, case_name: str, text: str
) -> None:
    case = CASES[case_name]
    received = as_received(text)
    name = next(names)
    before = state(crm, case.touches)
    method, path, body = case.request(crm, text, name)
    response = send(crm, method, path, body)
    note(f"{response.status_code} {response.text[:500]}")
    assert response.status_code < 500
    if not encodable(received):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert {e["field"] for e in response.json()["errors"]} == {case.pointer}
        assert {e["code"] for e in response.json()["errors"]} == {"unicode"}
    elif case.accepts(received):
        assert response.status_code in (200, 201)
    if response.status_code >= 400:
        assert state(crm, case.touches) == before
    else:
        assert case.read_back(crm, response, name) == case.stored(received)


# Percent-encoded bytes that are no UTF-8 (here a surrogate's encoding): Starlette decodes them as
# U+FFFD, in paths and in query strings alike.
NOT_UTF8 = "%ED%A0%80"
QUERY = "&".join(
    f"{name}={NOT_UTF8}"
    for name in (
        "filter",
        "sort",
        "limit",
        "cursor",
        "fields",
        "expand",
        "q",
        "count",
        "pipeline",
        "assigned_to",
        "status",
        "unread",
        "dry_run",
        "purge",
    )
)


def filled(path: str, values: dict[str, str]) -> str:
    """The route's path with its parameters from `values`, the others bad."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), f"x{NOT_UTF8}"), path)


def test_bytes_that_are_not_utf8_in_any_path_or_query_reach_no_server_error(crm: Api) -> None:
    # A note of its own: the routes include DELETE.
    spare = crm.post(NOTES, {"name": "spare"}).json()["id"]
    real = {"entity": BASE, "name": BASE, "id": spare, "field": "name"}
    failures = []
    for method, path, _endpoint in ROUTES:
        # Real names where a route has them (so the query is read), and every part bad.
        for url in {filled(path, real), filled(path, {})}:
            response = crm.client.request(
                method,
                f"{url}?{QUERY}",
                content=b"{}" if method in ("POST", "PUT", "PATCH") else None,
                headers=crm.headers(**{"Content-Type": "application/json"}),
            )
            if response.status_code >= 500:
                failures.append((method, url, response.status_code))
    assert failures == []


def test_an_entity_with_a_lone_surrogate_in_its_label_is_refused_and_nothing_is_created(
    crm: Api,
) -> None:
    # The defect as found: this committed the entity and its table, and from then on listing
    # entities and reading this one answered 500.
    before = ok(crm.get(META))["data"]
    response = send(crm, "POST", META, entity_doc("acme", label={"en": "Acme \ud800"}))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == [
        {
            "field": "/label/en",
            "code": "unicode",
            "message": "the text holds a lone surrogate (U+D800) at character 6, which is not "
            "Unicode text; send the characters themselves, or surrogate pairs only in pairs",
        }
    ]
    assert ok(crm.get(META))["data"] == before
    assert crm.get(f"{META}/acme").status_code == 404
    assert "acme" not in inspect(crm.engine).get_table_names()
    # Several places at once, a key among them: each is named.
    response = send(
        crm,
        "POST",
        META,
        entity_doc(
            "acme",
            label={"en": "\udc00", "zh-CN\ud800": "x"},
            fields=[{"name": "title", "type": "text", "help": {"en": "\ud800\ud800"}}],
        ),
    )
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [
        "/label/en",
        "/label",
        "/fields/0/help/en",
    ]
    assert '"zh-CN\\ud800"' in response.json()["errors"][1]["message"]
    assert ok(crm.get(META))["data"] == before


def test_a_body_full_of_bad_text_lists_the_first_twenty_places(crm: Api) -> None:
    before = ok(crm.get(NOTES, params={"limit": "500"}))["data"]
    response = send(crm, "POST", NOTES, {"name": "x", **{f"f{i}": "\udfff" for i in range(25)}})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [f"/f{i}" for i in range(20)]
    assert "the first 20 places" in response.json()["detail"]
    assert ok(crm.get(NOTES, params={"limit": "500"}))["data"] == before
