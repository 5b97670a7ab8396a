"""The records API contract (docs/api.md, "Records API") on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api

RECORDS = "/api/v1/records"


@pytest.fixture
def crm(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    return api


def create(api: Api, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"{RECORDS}/{entity}", body)
    assert response.status_code == 201, response.text
    return response.json()


def count(api: Api, entity: str, filter_: str | None = None) -> int:
    params = {"count": "true", "limit": "1"}
    if filter_:
        params["filter"] = filter_
    return api.get(f"{RECORDS}/{entity}", params=params).json()["count"]


def test_create_returns_the_record_with_location_etag_defaults_and_autonumbers(crm: Api) -> None:
    response = crm.post(f"{RECORDS}/opportunity", {"name": "Big deal", "amount": 1200.5})
    assert response.status_code == 201
    record = response.json()
    assert response.headers["location"] == f"/api/v1/records/opportunity/{record['id']}"
    assert response.headers["etag"] == '"1"'
    assert record["stage"] == "qualify"
    assert record["closed"] is False
    assert record["amount"] == "1200.50"
    assert record["number"].startswith("OPP-") and record["number"].endswith("-00001")
    assert record["version"] == 1
    assert record["owner"] == record["created_by"]
    second = create(crm, "opportunity", {"name": "Another"})
    assert second["number"].endswith("-00002")
    fetched = crm.get(f"{RECORDS}/opportunity/{record['id']}")
    assert fetched.json() == record
    assert fetched.headers["etag"] == '"1"'


def test_every_field_error_is_reported_at_once_and_nothing_is_written(crm: Api) -> None:
    response = crm.post(
        f"{RECORDS}/opportunity",
        {
            "amount": "-5",
            "stage": "sleeping",
            "close_date": "2023-02-29",
            "probability": 101,
            "email": "not-an-email",
            "nonsense": 1,
            "account": "01NOSUCHACCOUNT0000000000",
            "number": "OPP-1",
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert errors == {
        "name": "required",
        "amount": "min",
        "stage": "choice",
        "close_date": "format",
        "probability": "max",
        "email": "format",
        "nonsense": "unknown_field",
        "account": "not_found",
        "number": "read_only",
    }
    assert count(crm, "opportunity") == 0


def test_lookup_must_point_at_a_live_record(crm: Api) -> None:
    account = create(crm, "account", {"name": "Acme"})
    create(crm, "opportunity", {"name": "ok", "account": account["id"]})
    assert crm.delete(f"{RECORDS}/account/{account['id']}").status_code == 204
    response = crm.post(f"{RECORDS}/opportunity", {"name": "x", "account": account["id"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "account"


def test_stale_if_match_is_rejected_and_changes_nothing(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "n", "amount": 10})
    url = f"{RECORDS}/opportunity/{record['id']}"
    first = crm.patch(url, {"stage": "proposal"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    stale = crm.patch(url, {"amount": 99}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    current = crm.get(url).json()
    assert current["amount"] == "10.00" and current["version"] == 2
    assert crm.patch(url, {"amount": 99}, headers={"If-Match": "not-an-etag"}).status_code == 400
    assert crm.delete(url, headers={"If-Match": '"1"'}).status_code == 412
    assert crm.get(url).status_code == 200


def test_a_weak_if_match_never_matches_and_changes_nothing(crm: Api) -> None:
    # RFC 9110: If-Match compares strongly, so W/"1" is not the record's "1".
    record = create(crm, "opportunity", {"name": "n", "amount": 10})
    url = f"{RECORDS}/opportunity/{record['id']}"
    for header in ['W/"1"', 'W/"1", W/"2"']:
        patched = crm.patch(url, {"amount": 99}, headers={"If-Match": header})
        assert patched.status_code == 412, (header, patched.text)
        assert patched.json()["current_version"] == 1
        assert "weak" in patched.json()["detail"]
        assert crm.delete(url, headers={"If-Match": header}).status_code == 412
    assert crm.get(url).json() == record


def test_an_if_match_list_matches_when_one_of_its_strong_tags_is_current(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "n", "amount": 10})
    url = f"{RECORDS}/opportunity/{record['id']}"
    stale = crm.patch(url, {"amount": 99}, headers={"If-Match": '"5", W/"1", "7"'})
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 1
    assert crm.delete(url, headers={"If-Match": '"2", "3"'}).status_code == 412
    assert crm.get(url).json() == record
    patched = crm.patch(url, {"amount": 99}, headers={"If-Match": '"5", "1"'})
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    assert crm.delete(url, headers={"If-Match": '"1", "3"'}).status_code == 412
    assert crm.delete(url, headers={"If-Match": '"1", "2"'}).status_code == 204
    assert crm.get(url).status_code == 404


def test_if_match_star_asks_only_that_the_record_exists(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "n"})
    url = f"{RECORDS}/opportunity/{record['id']}"
    assert crm.patch(url, {"amount": 5}, headers={"If-Match": "*"}).status_code == 200
    missing = f"{RECORDS}/opportunity/01HZZZZZZZZZZZZZZZZZZZZZZZ"
    # A precondition is never evaluated for a record that isn't there: 404, as without it.
    for header in ["*", 'W/"1"', '"1", "2"', '"1"']:
        assert crm.patch(missing, {"amount": 5}, headers={"If-Match": header}).status_code == 404
        assert crm.delete(missing, headers={"If-Match": header}).status_code == 404


def test_patch_without_changes_keeps_the_version(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "same"})
    url = f"{RECORDS}/opportunity/{record['id']}"
    assert crm.patch(url, {"name": "same"}).json()["version"] == 1
    assert len(crm.get(f"{url}/history").json()["data"]) == 1


def test_history_records_who_changed_what_from_what(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "h", "amount": "5"})
    url = f"{RECORDS}/opportunity/{record['id']}"
    crm.patch(url, {"amount": "7.25", "stage": "proposal"})
    crm.delete(url)
    history = crm.get(f"{url}/history").json()["data"]
    assert [h["action"] for h in history] == ["delete", "update", "create"]
    update = history[1]
    assert update["changes"] == {
        "amount": {"old": "5.00", "new": "7.25"},
        "stage": {"old": "qualify", "new": "proposal"},
    }
    assert update["changed_by"] == record["owner"]
    assert update["version"] == 2
    assert history[2]["changes"]["name"] == {"old": None, "new": "h"}


def test_soft_delete_hides_the_record_and_restore_brings_it_back(crm: Api) -> None:
    record = create(crm, "opportunity", {"name": "gone"})
    url = f"{RECORDS}/opportunity/{record['id']}"
    assert crm.delete(url).status_code == 204
    assert crm.get(url).status_code == 404
    assert crm.patch(url, {"name": "x"}).status_code == 404
    assert count(crm, "opportunity") == 0
    restored = crm.post(f"{url}/restore")
    assert restored.status_code == 200
    assert restored.json()["version"] == 3
    assert crm.get(url).json()["name"] == "gone"
    assert crm.post(f"{url}/restore").status_code == 409


def test_unique_values_conflict_with_409(api: Api) -> None:
    api.make_entity(
        {
            "name": "contact",
            "label": {"en": "Contact"},
            "fields": [{"name": "email", "type": "email", "unique": True}],
        }
    )
    first = create(api, "contact", {"email": "a@example.com"})
    duplicate = api.post(f"{RECORDS}/contact", {"email": "a@example.com"})
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "email"
    assert count(api, "contact") == 1
    # A record in the recycle bin does not hold its unique value.
    api.delete(f"{RECORDS}/contact/{first['id']}")
    second = create(api, "contact", {"email": "a@example.com"})
    assert api.post(f"{RECORDS}/contact/{first['id']}/restore").status_code == 409
    assert api.get(f"{RECORDS}/contact/{second['id']}").status_code == 200


def test_unknown_entity_and_record_are_404(crm: Api) -> None:
    assert crm.get(f"{RECORDS}/nothing").status_code == 404
    assert crm.post(f"{RECORDS}/nothing", {}).status_code == 404
    assert crm.get(f"{RECORDS}/opportunity/01NOPE").status_code == 404
    assert crm.get(f"{RECORDS}/opportunity/01NOPE/history").status_code == 404


def test_missing_or_bad_token_is_401(crm: Api) -> None:
    assert crm.client.get(f"{RECORDS}/opportunity").status_code == 401
    bad = crm.client.get(f"{RECORDS}/opportunity", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_non_admins_read_metadata_but_cannot_change_it(crm: Api) -> None:
    token = crm.new_user("rep@example.com")
    assert (
        crm.get("/api/v1/meta/entities", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    response = crm.post(
        "/api/v1/meta/entities/account/fields",
        {"name": "x", "type": "text"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
    assert "x" not in {f["name"] for f in crm.get("/api/v1/meta/entities/account").json()["fields"]}


@pytest.fixture
def deals(crm: Api) -> dict[str, Any]:
    acme = create(crm, "account", {"name": "Acme", "industry": "retail"})
    volt = create(crm, "account", {"name": "Volt", "industry": "energy"})
    rows = [
        ("Alpha", "100", "qualify", acme, "2026-01-10", ["hot"]),
        ("Beta 50%", "6000", "negotiation", acme, "2026-02-01", ["vip", "hot"]),
        ("gamma", "9000", "negotiation", volt, None, []),
        ("Delta_x", None, "negotiation", volt, "2026-03-01", None),
        ("Epsilon", "6000", "won", None, "2026-01-20", ["vip"]),
    ]
    made = {}
    for name, amount, stage, account, close, tags in rows:
        body: dict[str, Any] = {
            "name": name,
            "amount": amount,
            "stage": stage,
            "close_date": close,
            "tags": tags,
        }
        if account:
            body["account"] = account["id"]
        made[name] = create(crm, "opportunity", body)
    return made


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["data"]]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('stage == "negotiation" and amount > 5000', {"Beta 50%", "gamma"}),
        ("amount >= 6000", {"Beta 50%", "gamma", "Epsilon"}),
        ('name contains "50%"', {"Beta 50%"}),
        ('name contains "_"', {"Delta_x"}),
        ('name startswith "a"', set()),
        ('lower(name) startswith "a"', {"Alpha"}),
        ('name endswith "ta"', set()),
        ("amount is null", {"Delta_x"}),
        ("close_date is null", {"gamma"}),
        ('close_date < "2026-02-01"', {"Alpha", "Epsilon"}),
        ('account.industry in ["energy"]', {"gamma", "Delta_x"}),
        ('account.industry == "retail" or account is null', {"Alpha", "Beta 50%", "Epsilon"}),
        ('tags contains "vip"', {"Beta 50%", "Epsilon"}),
        ("tags is blank", {"gamma", "Delta_x"}),
        ('stage not in ["negotiation", "won"]', {"Alpha"}),
        ("amount != 6000", {"Alpha", "gamma"}),
        ('not (stage == "won")', {"Alpha", "Beta 50%", "gamma", "Delta_x"}),
    ],
)
def test_filter_selects_exactly_the_matching_records(
    crm: Api, deals: dict[str, Any], expression: str, expected: set[str]
) -> None:
    response = crm.get(f"{RECORDS}/opportunity", params={"filter": expression, "limit": "500"})
    assert set(names(response)) == expected


def test_bad_filters_are_400_with_a_position(crm: Api, deals: dict[str, Any]) -> None:
    unknown = crm.get(f"{RECORDS}/opportunity", params={"filter": "stage == 'won' and amout > 1"})
    assert unknown.status_code == 400
    body = unknown.json()
    assert body["position"] == {"line": 1, "column": 20}
    assert "amount" in body["suggestions"]
    syntax = crm.get(f"{RECORDS}/opportunity", params={"filter": "amount >"})
    assert syntax.status_code == 400 and "position" in syntax.json()
    typed = crm.get(f"{RECORDS}/opportunity", params={"filter": 'amount > "lots"'})
    assert typed.status_code == 400


def test_sort_breaks_ties_by_id_and_puts_nulls_first_ascending(
    crm: Api, deals: dict[str, Any]
) -> None:
    response = crm.get(f"{RECORDS}/opportunity", params={"sort": "-amount,name"})
    assert names(response) == ["gamma", "Beta 50%", "Epsilon", "Alpha", "Delta_x"]
    ascending = crm.get(f"{RECORDS}/opportunity", params={"sort": "amount"})
    assert names(ascending)[0] == "Delta_x"
    tied = [r for r in ascending.json()["data"] if r["amount"] == "6000.00"]
    assert [r["id"] for r in tied] == sorted(r["id"] for r in tied)
    assert crm.get(f"{RECORDS}/opportunity", params={"sort": "amont"}).status_code == 400


def test_fields_expand_q_and_count(crm: Api, deals: dict[str, Any]) -> None:
    response = crm.get(
        f"{RECORDS}/opportunity",
        params={
            "fields": "name,account",
            "expand": "account",
            "filter": 'name == "Alpha"',
            "count": "true",
        },
    )
    body = response.json()
    assert body["count"] == 1
    (record,) = body["data"]
    assert set(record) == {"id", "name", "account"}
    assert record["account"]["name"] == "Acme"
    assert set(names(crm.get(f"{RECORDS}/opportunity", params={"q": "ALP"}))) == {"Alpha"}
    assert set(names(crm.get(f"{RECORDS}/opportunity", params={"q": "50%"}))) == {"Beta 50%"}
    assert crm.get(f"{RECORDS}/opportunity", params={"expand": "name"}).status_code == 400
    assert crm.get(f"{RECORDS}/opportunity", params={"fields": "nope"}).status_code == 400


@pytest.mark.parametrize("sort", ["", "-amount", "close_date,-name", "-stage,amount"])
def test_pagination_visits_every_record_exactly_once_while_records_change(
    crm: Api, deals: dict[str, Any], sort: str
) -> None:
    for i in range(20):
        create(crm, "opportunity", {"name": f"bulk {i:02}", "amount": i % 4 * 1000 or None})
    expected = {
        r["id"] for r in crm.get(f"{RECORDS}/opportunity", params={"limit": "500"}).json()["data"]
    }
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "4", "sort": sort}
        if cursor:
            params["cursor"] = cursor
        page = crm.get(f"{RECORDS}/opportunity", params=params).json()
        seen.extend(r["id"] for r in page["data"])
        if pages == 1:
            # Records changed mid-walk: a new record and an edit must not repeat or skip others.
            create(crm, "opportunity", {"name": "late arrival"})
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert expected <= set(seen)


def test_cursors_are_tamper_proof_and_tied_to_their_sort(crm: Api, deals: dict[str, Any]) -> None:
    page = crm.get(f"{RECORDS}/opportunity", params={"limit": "2", "sort": "-amount"}).json()
    cursor = page["next_cursor"]
    assert cursor
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert (
        crm.get(
            f"{RECORDS}/opportunity", params={"cursor": tampered, "sort": "-amount"}
        ).status_code
        == 400
    )
    other_sort = crm.get(f"{RECORDS}/opportunity", params={"cursor": cursor, "sort": "name"})
    assert other_sort.status_code == 400
    assert (
        crm.get(f"{RECORDS}/account", params={"cursor": cursor, "sort": "-amount"}).status_code
        == 400
    )


def test_formula_fields_are_computed_on_read_and_usable_in_filters_and_sorts(api: Api) -> None:
    api.make_entity(
        {
            "name": "line",
            "label": {"en": "Line"},
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "qty", "type": "integer"},
                {"name": "price", "type": "decimal", "precision": 12, "scale": 2},
                {
                    "name": "total",
                    "type": "formula",
                    "expression": "qty * price",
                    "result_type": "decimal",
                },
                {
                    "name": "shout",
                    "type": "formula",
                    "expression": "upper(title)",
                    "result_type": "text",
                },
            ],
        }
    )
    a = create(api, "line", {"title": "äpfel", "qty": 3, "price": "2.50"})
    create(api, "line", {"title": "pears", "qty": 1, "price": "9.00"})
    create(api, "line", {"title": "none", "qty": None, "price": "1.00"})
    assert float(a["total"]) == 7.5
    assert a["shout"] == "ÄPFEL"
    assert api.patch(f"{RECORDS}/line/{a['id']}", {"total": 1}).status_code == 422
    listed = api.get(f"{RECORDS}/line", params={"filter": "total > 5", "sort": "-total"})
    assert names_of(listed, "title") == ["pears", "äpfel"]
    ascending = api.get(f"{RECORDS}/line", params={"sort": "total", "limit": "1"}).json()
    assert ascending["data"][0]["title"] == "none"
    rest = api.get(
        f"{RECORDS}/line",
        params={"sort": "total", "limit": "5", "cursor": ascending["next_cursor"]},
    )
    assert names_of(rest, "title") == ["äpfel", "pears"]


def test_formulas_that_do_not_check_are_refused_at_design_time(api: Api) -> None:
    response = api.post(
        "/api/v1/meta/entities",
        {
            "name": "bad",
            "label": {"en": "Bad"},
            "fields": [
                {"name": "qty", "type": "integer"},
                {
                    "name": "f",
                    "type": "formula",
                    "expression": "qty * nope",
                    "result_type": "integer",
                },
                {"name": "g", "type": "formula", "expression": "qty > 1", "result_type": "integer"},
            ],
        },
    )
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(errors) == {"/fields/1/expression", "/fields/2/expression"}
    assert "nope" in errors["/fields/1/expression"]


def names_of(response: Any, field: str) -> list[Any]:
    assert response.status_code == 200, response.text
    return [r[field] for r in response.json()["data"]]
