"""The metadata API (docs/api.md, "Metadata API") on SQLite and PostgreSQL: design, migrate,
refuse."""

from __future__ import annotations

from typing import Any

from conftest import ACCOUNT, OPPORTUNITY, Api
from sqlalchemy import inspect

META = "/api/v1/meta/entities"
RECORDS = "/api/v1/records"


def columns(api: Api, table: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in inspect(api.engine).get_columns(table)}


def test_created_entity_is_a_real_table_with_typed_columns_and_indexes(api: Api) -> None:
    api.make_entity(ACCOUNT)
    body = api.make_entity(OPPORTUNITY)
    assert body["version"] == 1
    cols = columns(api, "opportunity")
    assert {"id", "owner", "version", "deleted_at", "amount", "close_date", "account"} <= set(cols)
    assert "NUMERIC" in cols["amount"].upper() and "DATE" in cols["close_date"].upper()
    indexed = {tuple(i["column_names"]) for i in inspect(api.engine).get_indexes("opportunity")}
    assert {("amount",), ("stage",), ("account",), ("close_date",)} <= indexed
    listed = api.get(META).json()["data"]
    assert [e["name"] for e in listed] == ["account", "opportunity"]
    document = api.get(f"{META}/opportunity").json()
    assert document["label"]["zh-CN"] == "商机" and document["version"] == 1


def test_invalid_documents_report_every_error_with_a_pointer(api: Api) -> None:
    response = api.post(
        META,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "title_field": "title",
            "fields": [
                {"name": "id", "type": "text"},
                {"name": "amount", "type": "money"},
                {
                    "name": "stage",
                    "type": "picklist",
                    "default": "x",
                    "options": [{"value": "a"}, {"value": "a"}],
                },
                {"name": "account", "type": "lookup", "target": "nowhere"},
                {"name": "Bad Name", "type": "text"},
                {"name": "amount", "type": "integer", "default": "ten"},
            ],
        },
    )
    assert response.status_code == 422
    pointers = {e["field"] for e in response.json()["errors"]}
    assert {
        "/title_field",
        "/fields/0/name",
        "/fields/1/type",
        "/fields/2/options/1/value",
        "/fields/2/default",
        "/fields/3/target",
        "/fields/4/name",
        "/fields/5/name",
        "/fields/5/default",
    } <= pointers
    assert api.get(f"{META}/deal").status_code == 404
    assert "deal" not in inspect(api.engine).get_table_names()


def test_duplicate_entity_is_a_conflict(api: Api) -> None:
    api.make_entity(ACCOUNT)
    assert api.post(META, ACCOUNT).status_code == 409


def test_field_added_to_a_table_with_rows_fills_its_default(api: Api) -> None:
    api.make_entity(ACCOUNT)
    ids = [api.post(f"{RECORDS}/account", {"name": f"a{i}"}).json()["id"] for i in range(3)]
    refused = api.post(f"{META}/account/fields", {"name": "tier", "type": "text", "required": True})
    assert refused.status_code == 422
    assert "3 existing record(s)" in refused.json()["errors"][0]["message"]
    added = api.post(
        f"{META}/account/fields",
        {
            "name": "tier",
            "type": "picklist",
            "required": True,
            "default": "bronze",
            "options": [{"value": "bronze"}, {"value": "gold"}],
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["version"] == 2
    for record_id in ids:
        assert api.get(f"{RECORDS}/account/{record_id}").json()["tier"] == "bronze"


def test_type_change_that_some_rows_cannot_take_is_refused_with_data_intact(api: Api) -> None:
    api.make_entity(
        {
            "name": "item",
            "label": {"en": "Item"},
            "fields": [{"name": "code", "type": "text", "indexed": True}],
        }
    )
    good = [api.post(f"{RECORDS}/item", {"code": str(n)}).json()["id"] for n in (1, 22, 333)]
    bad = [api.post(f"{RECORDS}/item", {"code": c}).json()["id"] for c in ("x1", "4.5")]
    before_columns = columns(api, "item")
    response = api.patch(f"{META}/item/fields/code", {"type": "integer"})
    assert response.status_code == 422
    message = response.json()["errors"][0]["message"]
    assert message.startswith("2 record(s)")
    assert all(record_id in message for record_id in bad)
    assert columns(api, "item") == before_columns
    assert api.get(f"{META}/item").json()["version"] == 1
    assert [api.get(f"{RECORDS}/item/{i}").json()["code"] for i in good] == ["1", "22", "333"]
    # Once the bad rows are fixed the same change converts every value.
    for record_id in bad:
        api.patch(f"{RECORDS}/item/{record_id}", {"code": "7"})
    changed = api.patch(f"{META}/item/fields/code", {"type": "integer"})
    assert changed.status_code == 200, changed.text
    assert "INT" in columns(api, "item")["code"].upper()
    assert [api.get(f"{RECORDS}/item/{i}").json()["code"] for i in good] == [1, 22, 333]
    listed = api.get(f"{RECORDS}/item", params={"filter": "code > 20", "sort": "code"}).json()
    assert [r["code"] for r in listed["data"]] == [22, 333]


def test_conversions_outside_the_table_are_refused(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    response = api.patch(f"{META}/opportunity/fields/account", {"type": "text"})
    assert response.status_code == 422
    assert "can't change from lookup to text" in response.json()["errors"][0]["message"]


def test_required_and_unique_are_checked_against_existing_rows(api: Api) -> None:
    api.make_entity(ACCOUNT)
    a = api.post(f"{RECORDS}/account", {"name": "A", "website": "https://a.example"}).json()
    b = api.post(f"{RECORDS}/account", {"name": "A"}).json()
    required = api.patch(f"{META}/account/fields/website", {"required": True})
    assert required.status_code == 422 and b["id"] in required.json()["errors"][0]["message"]
    unique = api.patch(f"{META}/account/fields/name", {"unique": True})
    assert unique.status_code == 422
    assert {a["id"], b["id"]} <= set(
        unique.json()["errors"][0]["message"].split(": ")[-1].split(", ")
    )
    api.patch(f"{RECORDS}/account/{b['id']}", {"name": "B"})
    assert api.patch(f"{META}/account/fields/name", {"unique": True}).status_code == 200
    assert api.post(f"{RECORDS}/account", {"name": "B"}).status_code == 409


def test_delete_hides_the_field_and_keeps_data_until_purge(api: Api) -> None:
    api.make_entity(ACCOUNT)
    record = api.post(f"{RECORDS}/account", {"name": "A", "website": "https://a.example"}).json()
    hidden = api.delete(f"{META}/account/fields/website")
    assert hidden.status_code == 200
    assert hidden.json()["hidden_fields"] == ["website"]
    assert "website" in columns(api, "account")
    assert "website" not in api.get(f"{RECORDS}/account/{record['id']}").json()
    assert api.post(f"{RECORDS}/account", {"name": "B", "website": "x"}).status_code == 422
    back = api.post(f"{META}/account/fields", {"name": "website", "type": "url"})
    assert back.status_code == 201
    assert api.get(f"{RECORDS}/account/{record['id']}").json()["website"] == "https://a.example"
    purged = api.delete(f"{META}/account/fields/website", params={"purge": "true"})
    assert purged.status_code == 200
    assert "website" not in columns(api, "account")


def test_rename_keeps_the_data(api: Api) -> None:
    api.make_entity(ACCOUNT)
    record = api.post(f"{RECORDS}/account", {"name": "A", "website": "https://a.example"}).json()
    renamed = api.patch(f"{META}/account/fields/website", {"name": "homepage"})
    assert renamed.status_code == 200, renamed.text
    assert api.get(f"{RECORDS}/account/{record['id']}").json()["homepage"] == "https://a.example"


def test_put_dry_run_returns_the_plan_and_changes_nothing(api: Api) -> None:
    api.make_entity(ACCOUNT)
    document = api.get(f"{META}/account").json()
    document["fields"].append({"name": "employees", "type": "integer", "indexed": True})
    plan = api.put(f"{META}/account", document, params={"dry_run": "true"})
    assert plan.status_code == 200
    ops = [op["op"] for op in plan.json()["plan"]["operations"]]
    assert ops == ["add_column", "create_index"]
    assert "employees" not in columns(api, "account")
    assert api.get(f"{META}/account").json()["version"] == 1
    applied = api.put(f"{META}/account", document)
    assert applied.status_code == 200 and applied.json()["version"] == 2
    assert "employees" in columns(api, "account")
    stale = api.put(f"{META}/account", document)  # still says version 1
    assert stale.status_code == 412


def test_versions_list_and_restore(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.post(f"{META}/account/fields", {"name": "employees", "type": "integer"})
    versions = api.get(f"{META}/account/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["diff"] == {"fields_added": ["employees"]}
    restored = api.post(f"{META}/account/versions/1/restore")
    assert restored.status_code == 200, restored.text
    body: dict[str, Any] = restored.json()
    assert body["version"] == 3
    assert "employees" not in {f["name"] for f in body["fields"]}
    assert body["hidden_fields"] == ["employees"]
    assert api.post(f"{META}/account/versions/99/restore").status_code == 404
