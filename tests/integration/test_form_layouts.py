"""Form layouts: designed as versioned metadata, derived from the entity when none is designed,
and given to each user as they may see them; and the three new kinds (assignment rules, list
views, form layouts) in packages, in the way of an entity's deletion, and in the OpenAPI
document as they are answered."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api, start_api
from test_openapi_complete import conforms, document_of

from metacrm.metadata import store
from metacrm.metadata.assignment_rules import ASSIGNMENT_RULE
from metacrm.metadata.form_layouts import FORM_LAYOUT
from metacrm.metadata.list_views import LIST_VIEW
from metacrm.metadata.packages import export_package
from metacrm.platform.db import reading
from metacrm.platform.users import find_user
from metacrm.runtime.packages import apply_package

V1 = "/api/v1"
ACCOUNT = {
    "name": "account",
    "label": {"en": "Account", "zh-CN": "客户"},
    "plural_label": {"en": "Accounts", "zh-CN": "客户"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "phone", "type": "phone"},
        {"name": "secret", "type": "text"},
    ],
}
CONTACT = {
    "name": "contact",
    "label": {"en": "Contact", "zh-CN": "联系人"},
    "plural_label": {"en": "Contacts", "zh-CN": "联系人"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "account", "type": "lookup", "target": "account"},
        {"name": "email", "type": "email"},
    ],
}
# Reads accounts without their secret, and no contacts at all.
REP = {
    "name": "rep",
    "label": {"en": "Rep"},
    "entities": {
        "account": {"actions": {"read": "all"}, "fields": {"secret": {"access": "hidden"}}}
    },
}
ACCOUNT_PAGE = {
    "name": "account_page",
    "label": "Account page",
    "entity": "account",
    "sections": [
        {"key": "main", "label": "Main", "columns": 2, "fields": ["name", "phone"]},
        {"key": "private", "label": "Private", "columns": 1, "fields": ["secret"]},
        {"key": "who", "label": "Who", "fields": ["owner"], "visible_if": 'phone != ""'},
    ],
    "related_lists": [
        {"entity": "contact", "lookup": "account", "columns": ["name", "email"], "limit": 5}
    ],
    "default": True,
}


@pytest.fixture
def crm(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    api.make_entity(CONTACT)
    assert api.post(f"{V1}/meta/roles", REP).status_code == 201
    return api


def errors_of(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


def test_an_entity_without_a_designed_layout_gets_the_derived_one(crm: Api) -> None:
    found = crm.get(f"{V1}/layouts/account")
    assert found.status_code == 200, found.text
    layout = found.json()
    assert layout["derived"] is True and layout["name"] == "derived" and layout["version"] == 0
    assert [(s["key"], s["fields"]) for s in layout["sections"]] == [
        ("details", ["name", "phone", "secret"]),
        ("system", ["owner", "created_at", "created_by", "updated_at", "updated_by"]),
    ]
    assert layout["sections"][1]["collapsed"] is True
    assert layout["related_lists"] == [
        {
            "entity": "contact",
            "lookup": "account",
            "label": {"en": "Contacts", "zh-CN": "联系人"},
            "columns": ["name", "email"],
        }
    ]
    assert layout["unplaced"] == []
    assert crm.get(f"{V1}/layouts/ghost").status_code == 404


def test_a_designed_default_layout_replaces_the_derived_one(crm: Api) -> None:
    made = crm.post(f"{V1}/meta/form-layouts", ACCOUNT_PAGE)
    assert made.status_code == 201, made.text
    assert made.json()["sections"][0]["label"] == {"en": "Main"}
    layout = crm.get(f"{V1}/layouts/account").json()
    assert layout["derived"] is False and layout["name"] == "account_page"
    assert [s["key"] for s in layout["sections"]] == ["main", "private", "who"]
    assert layout["sections"][2]["visible_if"] == 'phone != ""'
    # Another layout, not the default: asked for by name.
    compact = {
        "name": "compact",
        "entity": "account",
        "sections": [{"key": "main", "label": "Main", "fields": ["name"]}],
    }
    assert crm.post(f"{V1}/meta/form-layouts", compact).status_code == 201
    named = crm.get(f"{V1}/layouts/account", params={"name": "compact"}).json()
    assert named["name"] == "compact" and named["unplaced"] == ["phone", "secret"]
    assert named["label"] == {"en": "compact"}
    assert crm.get(f"{V1}/layouts/account", params={"name": "ghost"}).status_code == 404
    # The contact entity has none: derived, with no related lists (nothing looks it up).
    contact = crm.get(f"{V1}/layouts/contact").json()
    assert contact["derived"] is True and contact["related_lists"] == []


def test_a_user_gets_the_layout_without_what_they_may_not_see(crm: Api) -> None:
    assert crm.post(f"{V1}/meta/form-layouts", ACCOUNT_PAGE).status_code == 201
    rep = {"Authorization": f"Bearer {crm.new_user('rep@example.com', roles=('rep',))}"}
    layout = crm.get(f"{V1}/layouts/account", headers=rep).json()
    # The section of the hidden field goes, and the related list of unreadable contacts.
    assert [(s["key"], s["fields"]) for s in layout["sections"]] == [
        ("main", ["name", "phone"]),
        ("who", ["owner"]),
    ]
    assert layout["related_lists"] == [] and layout["unplaced"] == []
    derived = crm.get(f"{V1}/layouts/account", params={"name": "account_page"}, headers=rep)
    assert derived.status_code == 200
    assert crm.get(f"{V1}/layouts/contact", headers=rep).status_code == 404


def test_layouts_are_versioned_documents_refused_with_every_problem(crm: Api) -> None:
    assert crm.post(f"{V1}/meta/form-layouts", ACCOUNT_PAGE).status_code == 201
    broken = {
        **ACCOUNT_PAGE,
        "sections": [
            {"key": "main", "label": "Main", "fields": ["phone", "ghost"], "visible_if": "x >"},
            {"key": "main", "label": "Again", "columns": 3, "fields": ["phone"]},
        ],
        "related_lists": [{"entity": "contact", "lookup": "name"}],
    }
    assert errors_of(crm.put(f"{V1}/meta/form-layouts/account_page", broken)) == {
        ("/sections/0/fields/1", "unknown_field"),
        ("/sections/0/visible_if", "expression"),
        ("/sections/1/key", "duplicate"),
        ("/sections/1/columns", "enum"),
        ("/sections/1/fields/0", "duplicate"),
        ("/sections", "required_field"),
        ("/related_lists/0/lookup", "not_lookup"),
    }
    twice = {
        **ACCOUNT_PAGE,
        "sections": [
            {"key": "a", "label": "A", "fields": ["phone"]},
            {"key": "b", "label": "B", "fields": ["phone"]},
        ],
    }
    assert errors_of(crm.put(f"{V1}/meta/form-layouts/account_page", twice)) == {
        ("/sections/1/fields/0", "duplicate"),
        ("/sections", "required_field"),
    }
    other = {**ACCOUNT_PAGE, "name": "second"}
    assert errors_of(crm.post(f"{V1}/meta/form-layouts", other)) == {
        ("/default", "duplicate_default")
    }
    changed = {**ACCOUNT_PAGE, "related_lists": [], "version": 1}
    assert crm.put(f"{V1}/meta/form-layouts/account_page", changed).status_code == 200
    assert crm.put(f"{V1}/meta/form-layouts/account_page", changed).status_code == 412
    listed = crm.get(f"{V1}/meta/form-layouts").json()["data"]
    assert listed == [
        {
            "name": "account_page",
            "label": {"en": "Account page"},
            "entity": "account",
            "default": True,
            "sections": 3,
            "version": 2,
        }
    ]
    restored = crm.post(f"{V1}/meta/form-layouts/account_page/versions/1/restore").json()
    assert len(restored["related_lists"]) == 1 and restored["version"] == 3
    assert crm.delete(f"{V1}/meta/form-layouts/account_page").status_code == 204
    assert crm.get(f"{V1}/layouts/account").json()["derived"] is True


# ---- the three kinds together ---------------------------------------------------------------


def designed(api: Api) -> None:
    """An assignment rule, a shared list view and a layout on contact; a layout of account
    listing contacts."""
    documents = {
        "assignment-rules": {
            "name": "contacts",
            "label": "Contacts",
            "entity": "contact",
            "rules": [{"condition": 'account.name == "Acme"', "role": "rep"}],
        },
        "list-views": {
            "name": "all_contacts",
            "label": "All contacts",
            "entity": "contact",
            "columns": ["name", "account.name"],
            "filter": 'account.phone != ""',
            "sort": "name",
            "default": True,
        },
        "form-layouts": {
            "name": "contact_page",
            "entity": "contact",
            "sections": [{"key": "main", "label": "Main", "fields": ["name", "account"]}],
        },
    }
    for collection, document in documents.items():
        made = api.post(f"{V1}/meta/{collection}", document)
        assert made.status_code == 201, made.text
    assert api.post(f"{V1}/meta/form-layouts", ACCOUNT_PAGE).status_code == 201


def test_the_three_kinds_stand_in_the_way_of_deleting_their_entity(crm: Api) -> None:
    designed(crm)
    refused = crm.delete(f"{V1}/meta/entities/contact")
    assert errors_of(refused) == {
        ("/assignment-rules/contacts/entity", "assignment_rule"),
        ("/list-views/all_contacts/entity", "list_view"),
        ("/form-layouts/contact_page/entity", "form_layout"),
        ("/form-layouts/account_page/related_lists/0/entity", "related_list"),
    }
    # Deleting account: the contact's lookup, and every rule that reads account through it.
    blockers = errors_of(crm.delete(f"{V1}/meta/entities/account"))
    assert {
        ("/entities/contact/fields/1/target", "lookup"),
        ("/form-layouts/account_page/entity", "form_layout"),
        ("/assignment-rules/contacts/rules/0/condition", "reads_through"),
        ("/list-views/all_contacts/filter", "reads_through"),
    } <= blockers


def test_a_purged_entity_takes_its_users_own_views_with_it(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.make_entity(CONTACT)
    views = [
        api.post(f"{V1}/list-views", {"label": "Mine", "entity": entity, "columns": ["name"]})
        for entity in ("contact", "account")
    ]
    assert [v.status_code for v in views] == [201, 201]
    contact, account = (f"{V1}/list-views/{v.json()['id']}" for v in views)
    # A soft delete keeps them (the entity may come back), with nothing to show.
    assert api.delete(f"{V1}/meta/entities/contact").status_code == 200
    kept = api.get(contact).json()
    assert kept["available"] is False and kept["columns"] == ["name"]
    assert [v["entity"] for v in api.get(f"{V1}/list-views").json()["data"]] == ["account"]
    assert api.delete(f"{V1}/meta/entities/contact", params={"purge": "true"}).status_code == 200
    assert api.get(contact).status_code == 404
    assert api.get(account).status_code == 200


@pytest.fixture
def other(database_url: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    """A second, empty installation on the same kind of database."""
    if database_url.startswith("sqlite"):
        url, drop = database_url.replace("test.db", "other.db"), None
    else:
        server = request.getfixturevalue("postgres_server")
        drop = f"other_{secrets.token_hex(6)}"
        url = server.create_database(drop)
    instance = start_api(url)
    with instance.client:
        yield instance
    instance.engine.dispose()
    if drop:
        server.drop_database(drop)


def test_packages_carry_the_three_kinds(crm: Api, other: Api) -> None:
    designed(crm)
    with reading(crm.engine) as conn:
        package = export_package(conn)
        contact_only = export_package(conn, ["contact"])
    assert [d["name"] for d in package["assignment_rules"]] == ["contacts"]
    assert [d["name"] for d in package["list_views"]] == ["all_contacts"]
    assert [d["name"] for d in package["form_layouts"]] == ["account_page", "contact_page"]
    assert [d["name"] for d in contact_only["form_layouts"]] == ["contact_page"]
    with other.services.writing() as conn:
        admin = other.records(conn, find_user(conn, ADMIN_EMAIL))
        changes = apply_package(admin, package)
    assert "assignment_rule contacts: created" in changes
    assert "list_view all_contacts: created" in changes
    assert "form_layout contact_page: created" in changes
    for kind in (ASSIGNMENT_RULE, LIST_VIEW, FORM_LAYOUT):
        with reading(crm.engine) as conn, reading(other.engine) as there:
            here = {d.name: d.document for d in store.load_all(conn, kind)}
            assert here == {d.name: d.document for d in store.load_all(there, kind)}
    imported = other.get(f"{V1}/layouts/contact", params={"name": "contact_page"})
    assert imported.json()["sections"][0]["fields"] == ["name", "account"]
    assert other.get(f"{V1}/layouts/account").json()["name"] == "account_page"
    with other.services.writing() as conn:
        admin = other.records(conn, find_user(conn, ADMIN_EMAIL))
        with reading(other.engine) as again:
            assert apply_package(admin, export_package(again)) == []


def test_answers_about_views_and_layouts_match_the_document(crm: Api) -> None:
    designed(crm)
    document = document_of(crm)
    mine = crm.post(f"{V1}/list-views", {"label": "Mine", "entity": "account", "columns": ["name"]})
    checks = [
        (f"{V1}/meta/assignment-rules", "get", crm.get(f"{V1}/meta/assignment-rules")),
        (
            f"{V1}/meta/assignment-rules/{{name}}",
            "get",
            crm.get(f"{V1}/meta/assignment-rules/contacts"),
        ),
        (f"{V1}/meta/list-views", "get", crm.get(f"{V1}/meta/list-views")),
        (f"{V1}/meta/list-views/{{name}}", "get", crm.get(f"{V1}/meta/list-views/all_contacts")),
        (f"{V1}/meta/form-layouts", "get", crm.get(f"{V1}/meta/form-layouts")),
        (
            f"{V1}/meta/form-layouts/{{name}}",
            "get",
            crm.get(f"{V1}/meta/form-layouts/contact_page"),
        ),
        (f"{V1}/list-views", "get", crm.get(f"{V1}/list-views")),
        (f"{V1}/list-views", "post", mine),
        (f"{V1}/list-views/{{id}}", "get", crm.get(f"{V1}/list-views/{mine.json()['id']}")),
        (f"{V1}/layouts/account", "get", crm.get(f"{V1}/layouts/account")),
        (f"{V1}/layouts/contact", "get", crm.get(f"{V1}/layouts/contact")),
    ]
    for path, method, response in checks:
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        conforms(document, path, method, response)
