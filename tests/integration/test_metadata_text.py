"""Metadata documents as admins write them, on SQLite and PostgreSQL: labels given as plain
strings, every problem of a document in one answer, what a dry run says, and a store that never
commits a document it can't read back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ACCOUNT, Api
from sqlalchemy import select

from metacrm.metadata import store
from metacrm.platform.db import make_engine, writing
from metacrm.platform.errors import Unprocessable
from metacrm.platform.install import install
from metacrm.platform.systables import meta_documents

V1 = "/api/v1"
META = f"{V1}/meta/entities"


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def test_labels_and_messages_may_be_plain_strings_and_are_stored_as_label_maps(api: Api) -> None:
    # README's tour writes validation_rules[].message as a string: it means {"en": …}.
    created(
        api.post(
            META,
            {
                "name": "deal",
                "label": "Deal",
                "plural_label": {"en": "Deals", "zh-CN": "交易"},
                "fields": [
                    {"name": "name", "type": "text", "label": "Name", "help": "What it is"},
                    {
                        "name": "stage",
                        "type": "picklist",
                        "options": [{"value": "new", "label": "New"}, {"value": "won"}],
                    },
                    {"name": "amount", "type": "integer"},
                    {"name": "boss", "type": "user"},
                ],
                "validation_rules": [
                    {"name": "positive", "condition": "amount > 0", "message": "Must be positive"}
                ],
            },
        )
    )
    deal = api.get(f"{META}/deal").json()
    assert deal["label"] == {"en": "Deal"}
    assert deal["plural_label"] == {"en": "Deals", "zh-CN": "交易"}
    assert deal["fields"][0]["label"] == {"en": "Name"}
    assert deal["fields"][0]["help"] == {"en": "What it is"}
    assert deal["fields"][1]["options"] == [
        {"value": "new", "label": {"en": "New"}},
        {"value": "won"},
    ]
    assert deal["validation_rules"][0]["message"] == {"en": "Must be positive"}
    refused = api.post(f"{V1}/records/deal", {"name": "x", "amount": -1})
    assert refused.status_code == 422
    assert "Must be positive" in refused.text
    added = api.post(f"{META}/deal/fields", {"name": "note", "type": "text", "label": "Note"})
    assert added.status_code == 201, added.text
    changed = api.patch(f"{META}/deal/fields/amount", {"label": "Amount", "help": "In euros"})
    assert changed.status_code == 200, changed.text
    fields = {f["name"]: f for f in api.get(f"{META}/deal").json()["fields"]}
    assert fields["note"]["label"] == {"en": "Note"}
    assert (fields["amount"]["label"], fields["amount"]["help"]) == (
        {"en": "Amount"},
        {"en": "In euros"},
    )

    role = created(api.post(f"{V1}/meta/roles", {"name": "rep", "label": "Sales rep"}))
    assert role["label"] == {"en": "Sales rep"}
    pipeline = created(
        api.post(
            f"{V1}/meta/pipelines",
            {
                "name": "sales",
                "label": "Sales",
                "entity": "deal",
                "field": "stage",
                "stages": [
                    {"key": "new", "label": "New", "category": "open", "probability": 10},
                    {
                        "key": "won",
                        "label": "Won",
                        "category": "won",
                        "probability": 100,
                        "guidance": "Send the contract",
                    },
                ],
            },
        )
    )
    assert pipeline["label"] == {"en": "Sales"}
    assert pipeline["stages"][1]["guidance"] == {"en": "Send the contract"}
    process = created(
        api.post(
            f"{V1}/meta/approval-processes",
            {
                "name": "big",
                "label": "Big deals",
                "entity": "deal",
                "steps": [
                    {
                        "name": "boss",
                        "label": "The boss",
                        "approvers": [{"type": "field", "field": "boss"}],
                        "on_reject": [{"type": "notify", "to": ["owner"], "message": "No"}],
                    }
                ],
                "on_approve": [{"type": "notify", "to": ["submitter"], "message": "Yes"}],
            },
        )
    )
    assert process["label"] == {"en": "Big deals"}
    assert process["steps"][0]["label"] == {"en": "The boss"}
    assert process["steps"][0]["on_reject"][0]["message"] == {"en": "No"}
    assert process["on_approve"][0]["message"] == {"en": "Yes"}
    # A field that is text by nature stays text: a description is no label.
    assert api.put(f"{V1}/meta/roles/rep", {**role, "description": {"en": "x"}}).status_code == 422


def test_a_schema_error_does_not_hide_the_other_problems_of_the_document(api: Api) -> None:
    api.make_entity(ACCOUNT)
    response = api.post(
        META,
        {
            "name": "deal",
            "label": {"en": "Deal", "English": "Deal"},
            "title_field": "subject",
            "fields": [
                {"name": "amount", "type": "integer", "required": "yes"},
                {"name": "account", "type": "lookup", "target": "nowhere"},
            ],
            "validation_rules": [
                {"name": "r", "condition": "amount >", "message": {"en": ""}},
                {"name": "r", "condition": "true", "message": "ok", "field": "nope"},
            ],
        },
    )
    assert response.status_code == 422
    found = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert found == {
        ("/label", "pattern"),
        ("/title_field", "unknown_field"),
        ("/fields/0/required", "type"),
        ("/fields/1/target", "unknown_entity"),
        ("/validation_rules/0/message/en", "minLength"),
        ("/validation_rules/1/name", "duplicate"),
        ("/validation_rules/1/field", "unknown_field"),
    }
    # With the fields right, the expression is judged too, beside the remaining schema error.
    response = api.post(
        META,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "fields": [{"name": "amount", "type": "integer", "required": "yes"}],
            "validation_rules": [{"name": "r", "condition": "amount >", "message": ""}],
        },
    )
    found = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert found == {
        ("/fields/0/required", "type"),
        ("/validation_rules/0/condition", "expression"),
        ("/validation_rules/0/message/en", "minLength"),
    }
    assert [e["name"] for e in api.get(META).json()["data"]] == ["account"]


def test_a_dry_run_shows_the_version_the_change_would_get_and_changes_nothing(api: Api) -> None:
    preview = api.post(META, ACCOUNT, params={"dry_run": "true"})
    assert preview.status_code == 200, preview.text
    assert preview.json()["dry_run"] is True and preview.json()["entity"]["version"] == 1
    assert api.get(f"{META}/account").status_code == 404
    api.make_entity(ACCOUNT)
    document = api.get(f"{META}/account").json()
    document["fields"].append({"name": "employees", "type": "integer"})
    for _ in range(2):
        preview = api.put(f"{META}/account", document, params={"dry_run": "true"})
        assert preview.status_code == 200, preview.text
        assert preview.json()["entity"]["version"] == 2
        assert api.get(f"{META}/account").json()["version"] == 1
    applied = api.put(f"{META}/account", document)
    assert applied.json()["version"] == 2


def test_a_document_the_store_could_not_read_back_is_never_committed(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        install(engine)
        with writing(engine) as conn:
            stamp = store.current_stamp(conn)
        # Text no JSON answer can carry, from a path that skipped the request checks (a
        # package file, a script): refused with its place.
        with pytest.raises(Unprocessable) as refused, writing(engine) as conn:
            store.save(conn, "role", "odd", {"name": "odd", "label": {"en": "\ud800"}}, **WHO)
        assert [e.field for e in refused.value.errors] == ["/label/en"]
        # A document that reads back changed (a key JSON turns into text) is a bug: the whole
        # transaction, with whatever else it did, rolls back.
        with pytest.raises(store.UnreadableDocument), writing(engine) as conn:
            store.save(conn, "role", "other", {"name": "other", "label": {"en": "x"}}, **WHO)
            store.save(conn, "role", "odd", {"name": "odd", "label": {1: "x"}}, **WHO)
        with writing(engine) as conn:
            assert store.load_all(conn, "role") == []
            assert store.versions(conn, "role", "other") == []
            assert store.current_stamp(conn) == stamp
    finally:
        engine.dispose()


WHO: dict[str, Any] = {"author": None, "action": "create"}


def test_a_document_stored_with_a_lone_surrogate_before_the_checks_still_reads(
    sqlite_api: Api,
) -> None:
    # Only SQLite kept such text (PostgreSQL's json type refuses it); every request that read
    # the document failed. Now it reads, escaped, so an admin can see and fix it.
    sqlite_api.make_entity(ACCOUNT)
    with writing(sqlite_api.engine) as conn:
        row = conn.execute(
            select(meta_documents.c.document).where(meta_documents.c.name == "account")
        ).one()
        broken = {**row.document, "label": {"en": "Acc\ud800ount"}}
        conn.execute(
            meta_documents.update()
            .where(meta_documents.c.name == "account")
            .values(document=broken)
        )
        store.bump_stamp(conn)
    listed = sqlite_api.get(META)
    assert listed.status_code == 200
    assert b"Acc\\ud800ount" in listed.content
    assert json.loads(listed.content)["data"][0]["label"] == {"en": "Acc\ud800ount"}
    fixed = {**sqlite_api.get(f"{META}/account").json(), "label": {"en": "Account"}}
    assert sqlite_api.put(f"{META}/account", fixed).status_code == 200
    assert sqlite_api.get(META).json()["data"][0]["label"] == {"en": "Account"}
