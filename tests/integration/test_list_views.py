"""List views: shared ones are versioned metadata that admins design; each user keeps views of
their own that only they (and admins) see or change; every view is judged at use time against
the entity as its user sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Api

V1 = "/api/v1"
ACCOUNT = {
    "name": "account",
    "label": {"en": "Account"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "industry", "type": "picklist", "options": [{"value": "retail"}]},
    ],
}
DEAL = {
    "name": "deal",
    "label": {"en": "Deal"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
        {
            "name": "stage",
            "type": "picklist",
            "default": "new",
            "options": [{"value": "new"}, {"value": "won"}],
        },
        {"name": "account", "type": "lookup", "target": "account"},
        {"name": "margin", "type": "integer"},
    ],
}
# Reps see deals without their margin, and accounts without their industry.
REP = {
    "name": "rep",
    "label": {"en": "Rep"},
    "entities": {
        "deal": {
            "actions": {"read": "all", "create": "own", "update": "own"},
            "fields": {"margin": {"access": "hidden"}},
        },
        "account": {"actions": {"read": "all"}, "fields": {"industry": {"access": "hidden"}}},
    },
}
BIG_DEALS = {
    "name": "big_deals",
    "label": "Big deals",
    "entity": "deal",
    "columns": ["name", "account.name", "account.industry", "amount", "margin", "stage"],
    "filter": "amount > 1000",
    "sort": "-amount,name",
    "page_size": 20,
    "quick_filters": ["stage"],
    "default": True,
}


@dataclass
class Office:
    api: Api
    tokens: dict[str, str]
    ids: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def as_(self, who: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        call = getattr(self.api, method)
        args = (path, body) if method in ("post", "put", "patch") else (path,)
        return call(*args, headers=self.auth(who), **kw)


@pytest.fixture
def office(api: Api) -> Office:
    api.make_entity(ACCOUNT)
    api.make_entity(DEAL)
    assert api.post(f"{V1}/meta/roles", REP).status_code == 201
    tokens, ids = {}, {}
    for name in ("ann", "bob"):
        tokens[name] = api.new_user(f"{name}@example.com", roles=("rep",))
        me = api.get(f"{V1}/me", headers={"Authorization": f"Bearer {tokens[name]}"})
        ids[name] = me.json()["id"]
    return Office(api, tokens, ids)


def errors_of(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


# ---- shared views (metadata) -------------------------------------------------------------


def test_shared_views_are_versioned_documents_refused_with_every_problem(office: Office) -> None:
    api = office.api
    made = api.post(f"{V1}/meta/list-views", BIG_DEALS)
    assert made.status_code == 201, made.text
    assert made.json()["label"] == {"en": "Big deals"} and made.json()["version"] == 1
    broken = {
        **BIG_DEALS,
        "columns": ["name", "ghost", "stage.name"],
        "filter": "amount >",
        "sort": "ghost",
        "quick_filters": ["amount"],
        "page_size": 0,
    }
    assert errors_of(api.put(f"{V1}/meta/list-views/big_deals", broken)) == {
        ("/columns/1", "unknown_field"),
        ("/columns/2", "not_lookup"),
        ("/filter", "expression"),
        ("/sort", "unknown_field"),
        ("/quick_filters/0", "not_picklist"),
        ("/page_size", "minimum"),
    }
    second = {**BIG_DEALS, "name": "won_deals", "filter": 'stage == "won"'}
    assert errors_of(api.post(f"{V1}/meta/list-views", second)) == {
        ("/default", "duplicate_default")
    }
    changed = {**BIG_DEALS, "columns": ["name", "amount"], "version": 1}
    assert api.put(f"{V1}/meta/list-views/big_deals", changed).status_code == 200
    assert api.put(f"{V1}/meta/list-views/big_deals", changed).status_code == 412
    summary = api.get(f"{V1}/meta/list-views").json()["data"]
    assert summary == [
        {
            "name": "big_deals",
            "label": {"en": "Big deals"},
            "entity": "deal",
            "columns": ["name", "amount"],
            "default": True,
            "version": 2,
        }
    ]
    versions = api.get(f"{V1}/meta/list-views/big_deals/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    restored = api.post(f"{V1}/meta/list-views/big_deals/versions/1/restore").json()
    assert restored["columns"] == BIG_DEALS["columns"] and restored["version"] == 3
    assert api.post(f"{V1}/meta/list-views", {**second, "default": False}).status_code == 201
    refused = office.as_("ann", "post", f"{V1}/meta/list-views", {**second, "name": "mine"})
    assert refused.status_code == 403


def test_a_shared_view_shows_each_user_only_the_columns_they_may_see(office: Office) -> None:
    api = office.api
    assert api.post(f"{V1}/meta/list-views", BIG_DEALS).status_code == 201
    by_margin = {
        **BIG_DEALS,
        "name": "thin",
        "label": "Thin margins",
        "filter": "margin < 5",
        "default": False,
    }
    assert api.post(f"{V1}/meta/list-views", by_margin).status_code == 201
    mine = office.as_("ann", "get", f"{V1}/list-views", params={"entity": "deal"}).json()["data"]
    big, thin = mine
    assert big["name"] == "big_deals" and big["shared"] is True and big["owner"] is None
    assert big["columns"] == ["name", "account.name", "amount", "stage"]
    assert big["available"] is True and big["applies_by_default"] is True
    assert big["query"] == {
        "fields": "name,account,amount,stage",
        "expand": "account",
        "filter": "amount > 1000",
        "sort": "-amount,name",
        "limit": 20,
    }
    # A filter on a field withheld from the user would tell them about it: they can't use it.
    assert thin["available"] is False and "filter" in thin["reason"]
    assert thin["applies_by_default"] is False
    # The admin sees every column; the query works on the records API as it stands.
    admin = api.get(f"{V1}/list-views", params={"entity": "deal"}).json()["data"]
    assert admin[0]["columns"] == BIG_DEALS["columns"] and admin[1]["available"] is True
    account = api.post(f"{V1}/records/account", {"name": "Acme", "industry": "retail"}).json()
    api.post(f"{V1}/records/deal", {"name": "Big", "amount": 5000, "account": account["id"]})
    api.post(f"{V1}/records/deal", {"name": "Small", "amount": 5})
    shown = office.as_("ann", "get", f"{V1}/records/deal", params=big["query"])
    assert shown.status_code == 200, shown.text
    [row] = shown.json()["data"]
    assert row["name"] == "Big" and row["account"]["name"] == "Acme"
    assert "industry" not in row["account"] and "margin" not in row
    # Every entity the user may read, when none is named.
    everything = office.as_("ann", "get", f"{V1}/list-views").json()["data"]
    assert [v["name"] for v in everything] == ["big_deals", "thin"]
    unknown = office.as_("ann", "get", f"{V1}/list-views", params={"entity": "ghost"})
    assert unknown.status_code == 404


# ---- personal views ----------------------------------------------------------------------


def personal(**changes: Any) -> dict[str, Any]:
    doc = {
        "label": "My pipeline",
        "entity": "deal",
        "columns": ["name", "amount", "stage"],
        "filter": "owner == $user.id",
        "sort": "-amount",
        "default": True,
    }
    doc.update(changes)
    return doc


def test_a_user_keeps_views_of_their_own_checked_as_they_see_the_entity(office: Office) -> None:
    made = office.as_("ann", "post", f"{V1}/list-views", personal())
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["shared"] is False and view["owner"] == office.ids["ann"]
    assert view["label"] == {"en": "My pipeline"} and view["version"] == 1
    assert view["available"] is True and view["default"] is True
    hidden = personal(columns=["name", "margin", "account.industry"], filter="margin > 2")
    assert errors_of(office.as_("ann", "post", f"{V1}/list-views", hidden)) == {
        ("/columns/1", "unknown_field"),
        ("/columns/2", "unknown_field"),
        ("/filter", "expression"),
    }
    # The admin sees every field: the same view is fine for them.
    assert office.api.post(f"{V1}/list-views", hidden).status_code == 201
    not_sql = personal(filter="old.amount > 1")
    assert errors_of(office.as_("ann", "post", f"{V1}/list-views", not_sql)) == {
        ("/filter", "expression")
    }
    ghost = office.as_("ann", "post", f"{V1}/list-views", personal(entity="ghost"))
    assert errors_of(ghost) == {("/entity", "unknown_entity")}


def test_a_personal_view_is_seen_and_changed_only_by_its_owner_and_admins(office: Office) -> None:
    view = office.as_("ann", "post", f"{V1}/list-views", personal()).json()
    path = f"{V1}/list-views/{view['id']}"
    for method, body in (("get", None), ("put", personal(label="Mine now")), ("delete", None)):
        assert office.as_("bob", method, path, body).status_code == 404
    assert office.as_("bob", "get", f"{V1}/list-views").json()["data"] == []
    assert office.as_("ann", "get", path).json()["id"] == view["id"]
    # Admins see anyone's, and may list a user's views as that user sees them.
    assert office.api.get(path).status_code == 200
    theirs = office.api.get(f"{V1}/list-views", params={"user": office.ids["ann"]}).json()
    assert [v.get("id") for v in theirs["data"]] == [view["id"]]
    nosy = office.as_("bob", "get", f"{V1}/list-views", params={"user": office.ids["ann"]})
    assert nosy.status_code == 403
    changed = office.as_("ann", "put", path, personal(label="Renamed", version=1))
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = office.as_("ann", "put", path, personal(version=1))
    assert stale.status_code == 412 and stale.json()["current_version"] == 2
    moved = office.as_("ann", "put", path, personal(owner=office.ids["bob"]))
    assert errors_of(moved) == {("/owner", "owner")}
    given = office.as_("ann", "post", f"{V1}/list-views", personal(owner=office.ids["bob"]))
    assert given.status_code == 403
    for_bob = office.api.post(f"{V1}/list-views", personal(owner=office.ids["bob"]))
    assert for_bob.status_code == 201 and for_bob.json()["owner"] == office.ids["bob"]
    assert office.as_("bob", "get", f"{V1}/list-views/{for_bob.json()['id']}").status_code == 200
    assert office.as_("ann", "delete", path).status_code == 204
    assert office.as_("ann", "get", path).status_code == 404


def test_a_users_own_default_comes_before_the_shared_one(office: Office) -> None:
    assert office.api.post(f"{V1}/meta/list-views", BIG_DEALS).status_code == 201
    first = office.as_("ann", "post", f"{V1}/list-views", personal(label="A")).json()
    second = office.as_("ann", "post", f"{V1}/list-views", personal(label="B")).json()
    views = office.as_("ann", "get", f"{V1}/list-views", params={"entity": "deal"}).json()["data"]
    assert [(v.get("id") or v["name"], v["default"], v["applies_by_default"]) for v in views] == [
        (first["id"], False, False),
        (second["id"], True, True),
        ("big_deals", True, False),
    ]
    # Marking another unmarked the first: its version moved on.
    assert office.as_("ann", "get", f"{V1}/list-views/{first['id']}").json()["version"] == 2
    # Bob has none of his own: the shared default applies.
    bobs = office.as_("bob", "get", f"{V1}/list-views", params={"entity": "deal"}).json()["data"]
    assert [(v["name"], v["applies_by_default"]) for v in bobs] == [("big_deals", True)]


def test_a_personal_view_outlives_a_field_hidden_later_without_showing_it(office: Office) -> None:
    view = office.as_("ann", "post", f"{V1}/list-views", personal(columns=["name", "stage"]))
    assert view.status_code == 201
    hide = {**REP, "version": 1}
    hide["entities"] = {**REP["entities"]}
    hide["entities"]["deal"] = {
        **REP["entities"]["deal"],
        "fields": {"margin": {"access": "hidden"}, "stage": {"access": "hidden"}},
    }
    assert office.api.put(f"{V1}/meta/roles/rep", hide).status_code == 200
    found = office.as_("ann", "get", f"{V1}/list-views/{view.json()['id']}").json()
    assert found["columns"] == ["name"] and found["available"] is True
    assert found["query"]["fields"] == "name"


def test_bodies_that_are_not_views_are_refused(office: Office) -> None:
    assert errors_of(office.as_("ann", "post", f"{V1}/list-views", [])) == {("", "type")}
    extra = office.as_("ann", "post", f"{V1}/list-views", personal(name="x", shared=True))
    assert ("", "additionalProperties") in errors_of(extra)
    view = office.as_("ann", "post", f"{V1}/list-views", personal()).json()
    bad_version = office.as_("ann", "put", f"{V1}/list-views/{view['id']}", personal(version="1"))
    assert bad_version.status_code == 400
    assert office.as_("ann", "get", f"{V1}/list-views/{'x' * 40}").status_code == 404
