"""Role documents and record shares over HTTP on SQLite and PostgreSQL: design, version, restore
and refuse roles; share records with users, roles and org units; and that every change reaches
already signed-in users on their next request, in this process and in others."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api
from starlette.testclient import TestClient

from metacrm.platform.db import make_engine
from metacrm.platform.settings import Settings
from metacrm.runtime.api.app import build_app

V1 = "/api/v1"
ROLES = f"{V1}/meta/roles"
USERS = f"{V1}/users"
UNITS = f"{V1}/org-units"
RECORDS = f"{V1}/records"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def field_errors(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


def make_role(api: Api, document: dict[str, Any]) -> dict[str, Any]:
    response = api.post(ROLES, document)
    assert response.status_code == 201, response.text
    return response.json()


def user_id(api: Api, token: str) -> str:
    return api.get(f"{V1}/me", headers=bearer(token)).json()["id"]


REP = {
    "name": "rep",
    "label": {"en": "Sales rep", "zh-CN": "销售"},
    "description": "Works their own accounts.",
    "entities": {
        "account": {
            "actions": {"read": "own", "create": "own", "update": "own", "share": "own"},
            "record_rules": [
                {"name": "energy", "condition": 'industry == "energy"', "effect": "widen"}
            ],
            "fields": {"website": {"access": "masked", "mask": {"keep_start": 8}}},
        }
    },
}
VIEWER = {
    "name": "viewer",
    "label": {"en": "Viewer"},
    "entities": {"account": {"actions": {"read": "own"}}},
}


@pytest.fixture
def crm(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    return api


# ---- role documents -------------------------------------------------------------------------


def test_create_read_list_and_replace_a_role(crm: Api) -> None:
    created = crm.post(ROLES, REP)
    assert created.status_code == 201, created.text
    assert created.json() == {**REP, "version": 1}
    assert crm.get(f"{ROLES}/rep").json() == {**REP, "version": 1}
    make_role(crm, VIEWER)
    listed = crm.get(ROLES).json()["data"]
    assert listed == [
        {"name": "rep", "label": REP["label"], "version": 1, "entities": 1},
        {"name": "viewer", "label": {"en": "Viewer"}, "version": 1, "entities": 1},
    ]
    changed = copy.deepcopy(REP)
    changed["entities"]["opportunity"] = {"actions": {"read": "subordinates"}}
    replaced = crm.put(f"{ROLES}/rep", changed)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {**changed, "version": 2}
    assert crm.get(f"{ROLES}/rep").json() == {**changed, "version": 2}
    # A version in the body is not stored and not required; given, it must be the current one.
    again = crm.put(f"{ROLES}/rep", {**changed, "version": 2})
    assert again.status_code == 200 and again.json()["version"] == 3
    versions = crm.get(f"{ROLES}/rep/versions").json()["data"]
    assert [(v["version"], v["action"]) for v in versions] == [
        (3, "update"),
        (2, "update"),
        (1, "create"),
    ]
    assert versions[1]["diff"] == {"changed": ["entities"]}
    admin_id = crm.get(f"{V1}/me").json()["id"]
    assert {v["created_by"] for v in versions} == {admin_id}


def test_a_replace_read_at_an_older_version_is_refused(crm: Api) -> None:
    make_role(crm, REP)
    read_by_both = crm.get(f"{ROLES}/rep").json()
    first = crm.put(f"{ROLES}/rep", {**read_by_both, "description": "first editor"})
    assert first.status_code == 200, first.text
    second = crm.put(f"{ROLES}/rep", {**read_by_both, "description": "second editor"})
    assert second.status_code == 412, second.text
    assert second.json()["current_version"] == 2
    assert crm.get(f"{ROLES}/rep").json()["description"] == "first editor"
    garbled = crm.put(f"{ROLES}/rep", {**read_by_both, "version": "2"})
    assert garbled.status_code == 400
    assert crm.get(f"{ROLES}/rep/versions").json()["data"][0]["version"] == 2


def test_delete_and_restore_a_role_including_a_deleted_one(crm: Api) -> None:
    make_role(crm, REP)
    changed = copy.deepcopy(REP)
    changed["label"] = {"en": "Account manager"}
    crm.put(f"{ROLES}/rep", changed)
    restored = crm.post(f"{ROLES}/rep/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json() == {**REP, "version": 3}
    assert crm.delete(f"{ROLES}/rep").status_code == 204
    assert crm.get(f"{ROLES}/rep").status_code == 404
    assert crm.put(f"{ROLES}/rep", REP).status_code == 404
    assert crm.delete(f"{ROLES}/rep").status_code == 404
    assert crm.get(ROLES).json()["data"] == []
    # A deleted role's history stays, with the deletion as its last entry.
    versions = crm.get(f"{ROLES}/rep/versions").json()["data"]
    assert [(v["version"], v["action"]) for v in versions] == [
        (4, "delete"),
        (3, "restore"),
        (2, "update"),
        (1, "create"),
    ]
    assert versions[0]["diff"] == {"deleted": True}
    back = crm.post(f"{ROLES}/rep/versions/2/restore")
    assert back.status_code == 200, back.text
    assert back.json() == {**changed, "version": 5}
    assert crm.get(f"{ROLES}/rep").json() == {**changed, "version": 5}
    assert [r["name"] for r in crm.get(ROLES).json()["data"]] == ["rep"]
    # Users may hold it again.
    assert (
        crm.post(
            USERS, {"email": "r@example.com", "password": "long-password", "roles": ["rep"]}
        ).status_code
        == 201
    )


def test_unknown_roles_and_versions(crm: Api) -> None:
    make_role(crm, REP)
    assert crm.get(f"{ROLES}/ghost").status_code == 404
    assert crm.get(f"{ROLES}/ghost/versions").status_code == 404
    assert crm.post(f"{ROLES}/ghost/versions/1/restore").status_code == 404
    for version in ("0", "2", "99", "99999999999999999999"):
        assert crm.post(f"{ROLES}/rep/versions/{version}/restore").status_code == 404, version
    for version in ("one", "-1", "1.0", "\u0661"):
        assert crm.post(f"{ROLES}/rep/versions/{version}/restore").status_code == 400, version
    assert crm.get(f"{ROLES}/rep").json()["version"] == 1


def test_a_role_name_is_taken_once_and_never_renamed(crm: Api) -> None:
    make_role(crm, REP)
    duplicate = crm.post(ROLES, {**REP, "label": {"en": "Another"}})
    assert duplicate.status_code == 409
    renamed = crm.put(f"{ROLES}/rep", {**REP, "name": "seller"})
    assert field_errors(renamed) == {("/name", "rename")}
    assert crm.get(f"{ROLES}/seller").status_code == 404
    assert crm.get(f"{ROLES}/rep").json() == {**REP, "version": 1}


def test_admin_is_not_a_role_name(crm: Api) -> None:
    response = crm.post(ROLES, {"name": "admin", "label": {"en": "Admin"}})
    assert field_errors(response) == {("/name", "reserved")}
    assert crm.get(f"{ROLES}/admin").status_code == 404
    assert crm.get(ROLES).json()["data"] == []


def account_role(**spec: Any) -> dict[str, Any]:
    return {"name": "broken", "label": {"en": "Broken"}, "entities": {"account": spec}}


INVALID_ROLES: list[tuple[Any, set[tuple[str, str]]]] = [
    ([], {("", "type")}),
    ({"name": "broken"}, {("", "required")}),
    ({"name": "Broken", "label": {"en": "B"}}, {("/name", "pattern")}),
    ({"name": "broken", "label": {"en": "B"}, "rights": {}}, {("", "additionalProperties")}),
    (
        {
            "name": "broken",
            "label": {"en": "B"},
            "entities": {"lead": {"actions": {"read": "all"}}},
        },
        {("/entities/lead", "unknown_entity")},
    ),
    (account_role(actions={"read": "mine"}), {("/entities/account/actions/read", "enum")}),
    (account_role(actions={"read": None}), {("/entities/account/actions/read", "enum")}),
    (account_role(actions={"approve": "all"}), {("/entities/account/actions", "enum")}),
    (
        account_role(fields={"revenue": {"access": "hidden"}}),
        {("/entities/account/fields/revenue", "unknown_field")},
    ),
    (
        account_role(fields={"owner": {"access": "hidden"}}),
        {("/entities/account/fields/owner", "reserved")},
    ),
    (
        account_role(fields={"industry": {"access": "masked"}}),
        {("/entities/account/fields/industry/access", "not_maskable")},
    ),
    (
        account_role(fields={"name": {"access": "visible"}}),
        {("/entities/account/fields/name/access", "enum")},
    ),
    (
        account_role(fields={"name": {"access": "hidden", "mask": "email"}}),
        {("/entities/account/fields/name/mask", "unused")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[{"name": "n", "condition": "name", "effect": "narrow"}],
        ),
        {("/entities/account/record_rules/0/condition", "expression")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[
                {"name": "ok", "condition": "name == 'x'", "effect": "widen"},
                {"name": "o", "condition": 'old.industry == "energy"', "effect": "narrow"},
            ],
        ),
        {("/entities/account/record_rules/1/condition", "expression")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[{"name": "c", "condition": "changed(name)", "effect": "narrow"}],
        ),
        {("/entities/account/record_rules/0/condition", "expression")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[{"name": "s", "condition": "revenue > 5", "effect": "narrow"}],
        ),
        {("/entities/account/record_rules/0/condition", "expression")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[{"name": "s", "condition": "name ==", "effect": "narrow"}],
        ),
        {("/entities/account/record_rules/0/condition", "expression")},
    ),
    (
        account_role(
            actions={"read": "all"},
            record_rules=[{"name": "s", "condition": "name == 'x'", "effect": "both"}],
        ),
        {("/entities/account/record_rules/0/effect", "enum")},
    ),
]


def test_invalid_role_documents_are_422_at_their_pointer_and_save_nothing(crm: Api) -> None:
    make_role(crm, REP)
    for document, expected in INVALID_ROLES:
        assert field_errors(crm.post(ROLES, document)) == expected, document
        if isinstance(document, dict) and document.get("name") == "broken":
            replacing = {**document, "name": "rep"}
            assert field_errors(crm.put(f"{ROLES}/rep", replacing)) == expected, document
    assert [r["name"] for r in crm.get(ROLES).json()["data"]] == ["rep"]
    assert crm.get(f"{ROLES}/rep").json() == {**REP, "version": 1}
    assert len(crm.get(f"{ROLES}/rep/versions").json()["data"]) == 1
    assert crm.get(f"{ROLES}/broken/versions").status_code == 404


def test_a_role_with_many_problems_reports_them_all(crm: Api) -> None:
    response = crm.post(
        ROLES,
        {
            "name": "admin",
            "label": {"en": "Everything wrong"},
            "entities": {
                "lead": {"actions": {"read": "all"}},
                "account": {
                    "actions": {"read": "all"},
                    "record_rules": [
                        {"name": "a", "condition": "industry == 1", "effect": "narrow"},
                        {"name": "a", "condition": "changed(name)", "effect": "widen"},
                    ],
                    "fields": {"nope": {"access": "hidden"}},
                },
                "opportunity": {"fields": {"amount": {"access": "masked"}}},
            },
        },
    )
    assert field_errors(response) == {
        ("/name", "reserved"),
        ("/entities/lead", "unknown_entity"),
        ("/entities/account/record_rules/0/condition", "expression"),
        ("/entities/account/record_rules/1/name", "duplicate"),
        ("/entities/account/record_rules/1/condition", "expression"),
        ("/entities/account/fields/nope", "unknown_field"),
        ("/entities/opportunity/fields/amount/access", "not_maskable"),
    }
    assert response.json()["detail"] == "the role document is not valid"


def test_a_role_users_hold_cannot_be_deleted(crm: Api) -> None:
    make_role(crm, REP)
    holder = user_id(crm, crm.new_user("rep@example.com", roles=("rep",)))
    held = crm.delete(f"{ROLES}/rep")
    assert held.status_code == 409
    assert "1 user(s) hold role 'rep'" in held.json()["detail"]
    # Frozen holders still hold it.
    crm.patch(f"{USERS}/{holder}", {"is_active": False})
    assert crm.delete(f"{ROLES}/rep").status_code == 409
    assert crm.get(f"{ROLES}/rep").json()["version"] == 1
    crm.patch(f"{USERS}/{holder}", {"roles": []})
    assert crm.delete(f"{ROLES}/rep").status_code == 204
    # Nobody can be given a deleted role.
    refused = crm.post(
        USERS, {"email": "x@example.com", "password": "long-password", "roles": ["rep"]}
    )
    assert field_errors(refused) == {("roles", "unknown_role")}


def test_role_endpoints_are_for_admins_only(crm: Api) -> None:
    make_role(crm, REP)
    token = crm.new_user("rep@example.com", roles=("rep",))
    calls = [
        ("GET", ROLES, None),
        ("POST", ROLES, VIEWER),
        ("POST", ROLES, {"nonsense": True}),
        ("GET", f"{ROLES}/rep", None),
        ("GET", f"{ROLES}/ghost", None),
        ("PUT", f"{ROLES}/rep", {**REP, "entities": {"account": {"actions": {"read": "all"}}}}),
        ("DELETE", f"{ROLES}/rep", None),
        ("GET", f"{ROLES}/rep/versions", None),
        ("POST", f"{ROLES}/rep/versions/1/restore", None),
    ]
    for method, path, body in calls:
        anonymous = crm.client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        refused = crm.client.request(method, path, json=body, headers=bearer(token))
        assert refused.status_code == 403, (method, path, refused.text)
    assert [r["name"] for r in crm.get(ROLES).json()["data"]] == ["rep"]
    assert crm.get(f"{ROLES}/rep").json() == {**REP, "version": 1}


def test_a_custom_mask_object_masks_what_a_rep_reads(crm: Api) -> None:
    make_role(crm, REP)  # website: masked, keeping its first 8 characters
    token = crm.new_user("rep@example.com", roles=("rep",))
    rep = bearer(token)
    body = {"name": "Acme", "website": "https://acme.example", "owner": user_id(crm, token)}
    record = crm.post(f"{RECORDS}/account", body).json()
    fetched = crm.get(f"{RECORDS}/account/{record['id']}", headers=rep)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["website"] == "https://" + "*" * 12
    listed = crm.get(f"{RECORDS}/account", headers=rep)
    assert listed.status_code == 200, listed.text
    assert [r["website"] for r in listed.json()["data"]] == ["https://" + "*" * 12]
    assert crm.get(f"{RECORDS}/account").json()["data"][0]["website"] == "https://acme.example"


# ---- the metadata stamp: role changes reach signed-in users ---------------------------------


@pytest.fixture
def second_process(api: Api) -> Iterator[TestClient]:
    """Another app over the same database with its own engine and metadata cache, as another
    worker process would have."""
    engine = make_engine(api.url)
    client = TestClient(build_app(Settings(database_url=api.url), engine))
    with client:
        yield client
    engine.dispose()


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["name"] for r in response.json()["data"])


def test_role_changes_take_effect_on_the_next_request(crm: Api, second_process: TestClient) -> None:
    crm.post(f"{RECORDS}/account", {"name": "Sun", "industry": "energy"})
    crm.post(f"{RECORDS}/account", {"name": "Shop", "industry": "retail"})
    make_role(crm, {"name": "rep", "label": {"en": "Rep"}})
    token = crm.new_user("rep@example.com", roles=("rep",))
    clients = [crm.client, second_process]

    def each(path: str) -> list[Any]:
        return [c.get(path, headers=bearer(token)) for c in clients]

    # Both processes have cached the role while the rep is signed in.
    assert [r.status_code for r in each(f"{RECORDS}/account")] == [403, 403]
    read_all = {
        "name": "rep",
        "label": {"en": "Rep"},
        "entities": {"account": {"actions": {"read": "all"}}},
    }
    assert crm.put(f"{ROLES}/rep", read_all).status_code == 200
    assert [names(r) for r in each(f"{RECORDS}/account")] == [["Shop", "Sun"]] * 2
    narrowed = copy.deepcopy(read_all)
    narrowed["entities"]["account"]["record_rules"] = [
        {"name": "energy", "condition": 'industry == "energy"', "effect": "narrow"}
    ]
    narrowed["entities"]["account"]["fields"] = {"website": {"access": "hidden"}}
    assert crm.put(f"{ROLES}/rep", narrowed).status_code == 200
    for response in each(f"{RECORDS}/account"):
        assert names(response) == ["Sun"]
        assert "website" not in response.json()["data"][0]
    assert crm.post(f"{ROLES}/rep/versions/1/restore").status_code == 200
    assert [r.status_code for r in each(f"{RECORDS}/account")] == [403, 403]
    # A change made through the other process reaches this one too.
    changed = second_process.put(f"{ROLES}/rep", json=read_all, headers=bearer(crm.token))
    assert changed.status_code == 200, changed.text
    assert [names(r) for r in each(f"{RECORDS}/account")] == [["Shop", "Sun"]] * 2
    permissions = [r.json()["entities"]["account"]["actions"] for r in each(f"{V1}/me/permissions")]
    assert permissions == [{"read": {"scopes": ["all"], "rules": False}}] * 2


# ---- shares ---------------------------------------------------------------------------------


@pytest.fixture
def team(crm: Api) -> dict[str, Any]:
    """A rep who owns an account, a viewer and a second viewer, an org unit with a sub-unit."""
    make_role(crm, REP)
    make_role(crm, VIEWER)
    sales = crm.post(UNITS, {"name": "sales"}).json()
    east = crm.post(UNITS, {"name": "east", "parent": sales["id"]}).json()
    rep = crm.new_user("rep@example.com", roles=("rep",))
    viewer = crm.new_user("viewer@example.com", roles=("viewer",))
    colleague = crm.new_user("colleague@example.com", roles=("viewer",), org_unit=east["id"])
    made = crm.post(f"{RECORDS}/account", {"name": "Acme"}, headers=bearer(rep))
    assert made.status_code == 201, made.text
    account = made.json()
    theirs = crm.post(f"{RECORDS}/account", {"name": "Admin's"}).json()
    return {
        "rep": rep,
        "viewer": viewer,
        "viewer_id": user_id(crm, viewer),
        "colleague": colleague,
        "sales": sales,
        "account": f"{RECORDS}/account/{account['id']}",
        "theirs": f"{RECORDS}/account/{theirs['id']}",
    }


def test_share_a_record_change_the_access_and_take_it_back(crm: Api, team: dict[str, Any]) -> None:
    url, rep, viewer = team["account"], bearer(team["rep"]), bearer(team["viewer"])
    rep_id = user_id(crm, team["rep"])
    assert crm.get(url, headers=viewer).status_code == 404
    assert crm.get(f"{url}/shares", headers=rep).json() == {"data": []}
    body = {"principal_type": "user", "principal": team["viewer_id"], "access": "read"}
    created = crm.post(f"{url}/shares", body, headers=rep)
    assert created.status_code == 201, created.text
    share = created.json()
    assert share == {
        "id": share["id"],
        "principal_type": "user",
        "principal": team["viewer_id"],
        "access": "read",
        "created_at": share["created_at"],
        "created_by": rep_id,
    }
    assert share["created_at"].endswith("Z")
    assert crm.get(url, headers=viewer).json()["name"] == "Acme"
    # Sharing again with the same principal changes the access of the same share.
    upserted = crm.post(f"{url}/shares", {**body, "access": "edit"}, headers=rep)
    assert upserted.status_code in (200, 201), upserted.text
    assert upserted.json() == {**share, "access": "edit"}
    assert crm.get(f"{url}/shares", headers=rep).json() == {"data": [{**share, "access": "edit"}]}
    removed = crm.delete(f"{url}/shares/{share['id']}", headers=rep)
    assert removed.status_code == 204 and removed.content == b""
    assert crm.get(url, headers=viewer).status_code == 404
    assert crm.get(f"{url}/shares", headers=rep).json() == {"data": []}
    assert crm.delete(f"{url}/shares/{share['id']}", headers=rep).status_code == 404
    history = crm.get(f"{url}/history", headers=rep).json()["data"]
    key = f"share user:{team['viewer_id']}"
    assert [(h["action"], h["changes"], h["changed_by"]) for h in history] == [
        ("unshare", {key: {"old": "edit", "new": None}}, rep_id),
        ("share", {key: {"old": "read", "new": "edit"}}, rep_id),
        ("share", {key: {"old": None, "new": "read"}}, rep_id),
        ("create", history[-1]["changes"], rep_id),
    ]
    # Sharing does not change the record itself.
    assert crm.get(url, headers=rep).json()["version"] == 1


def test_share_with_a_role_and_with_an_org_unit_and_the_units_below(
    crm: Api, team: dict[str, Any]
) -> None:
    url, rep = team["account"], bearer(team["rep"])
    viewer, colleague = bearer(team["viewer"]), bearer(team["colleague"])
    assert crm.get(url, headers=colleague).status_code == 404
    to_unit = crm.post(
        f"{url}/shares",
        {"principal_type": "org_unit", "principal": team["sales"]["id"], "access": "read"},
        headers=rep,
    )
    assert to_unit.status_code == 201, to_unit.text
    assert crm.get(url, headers=colleague).status_code == 200  # east is below sales
    assert crm.get(url, headers=viewer).status_code == 404  # in no unit
    to_role = crm.post(
        f"{url}/shares",
        {"principal_type": "role", "principal": "viewer", "access": "read"},
        headers=rep,
    )
    assert to_role.status_code == 201, to_role.text
    assert crm.get(url, headers=viewer).status_code == 200
    shares = crm.get(f"{url}/shares", headers=rep).json()["data"]
    assert [(s["principal_type"], s["principal"]) for s in shares] == [
        ("org_unit", team["sales"]["id"]),
        ("role", "viewer"),
    ]
    history = crm.get(f"{url}/history", headers=rep).json()["data"]
    assert [list(h["changes"]) for h in history[:2]] == [
        ["share role:viewer"],
        [f"share org_unit:{team['sales']['id']}"],
    ]


def test_invalid_shares_are_422_and_save_nothing(crm: Api, team: dict[str, Any]) -> None:
    url, rep = f"{team['account']}/shares", bearer(team["rep"])
    frozen = crm.post(USERS, {"email": "gone@example.com", "password": "long-password"}).json()
    crm.patch(f"{USERS}/{frozen['id']}", {"is_active": False})
    ok = {"principal_type": "user", "principal": team["viewer_id"], "access": "read"}
    cases: list[tuple[Any, set[tuple[str, str]]]] = [
        ([ok], {("", "type")}),
        ({**ok, "principal": "01NOSUCHUSER00000000000000"}, {("principal", "not_found")}),
        ({**ok, "principal": frozen["id"]}, {("principal", "not_found")}),
        ({**ok, "principal": "viewer"}, {("principal", "not_found")}),
        ({**ok, "principal_type": "role", "principal": "ghost"}, {("principal", "not_found")}),
        ({**ok, "principal_type": "role", "principal": "admin"}, {("principal", "not_found")}),
        ({**ok, "principal_type": "org_unit", "principal": "sales"}, {("principal", "not_found")}),
        ({**ok, "principal_type": "group"}, {("principal_type", "enum")}),
        ({**ok, "access": "write"}, {("access", "enum")}),
        ({**ok, "principal": ""}, {("principal", "type")}),
        ({**ok, "principal": 5}, {("principal", "type")}),
        ({**ok, "expires": "never"}, {("expires", "unknown_field")}),
        ({}, {("principal_type", "enum"), ("principal", "type"), ("access", "enum")}),
    ]
    for body, expected in cases:
        assert field_errors(crm.post(url, body, headers=rep)) == expected, body
    assert crm.get(url, headers=rep).json() == {"data": []}
    assert [h["action"] for h in crm.get(f"{team['account']}/history").json()["data"]] == ["create"]


def test_sharing_needs_the_share_right_on_that_record(crm: Api, team: dict[str, Any]) -> None:
    viewer = bearer(team["viewer"])
    url = team["account"]
    body = {"principal_type": "role", "principal": "rep", "access": "read"}
    # The viewer reads the account through a share but has no share right on accounts.
    crm.post(f"{url}/shares", {**body, "principal_type": "user", "principal": team["viewer_id"]})
    assert crm.get(url, headers=viewer).status_code == 200
    refused = crm.post(f"{url}/shares", body, headers=viewer)
    assert refused.status_code == 403, refused.text
    share_id = crm.get(f"{url}/shares").json()["data"][0]["id"]
    assert crm.delete(f"{url}/shares/{share_id}", headers=viewer).status_code == 403
    # The rep may share, but only their own records: the admin's account shared with them
    # for editing is readable, not shareable.
    rep = bearer(team["rep"])
    theirs = team["theirs"]
    rep_id = user_id(crm, team["rep"])
    crm.post(f"{theirs}/shares", {"principal_type": "user", "principal": rep_id, "access": "edit"})
    assert crm.get(theirs, headers=rep).status_code == 200
    assert crm.post(f"{theirs}/shares", body, headers=rep).status_code == 403
    assert len(crm.get(f"{theirs}/shares").json()["data"]) == 1
    assert len(crm.get(f"{url}/shares").json()["data"]) == 1


def test_shares_of_a_record_the_caller_cannot_read_are_404(crm: Api, team: dict[str, Any]) -> None:
    rep, theirs = bearer(team["rep"]), team["theirs"]
    share = crm.post(
        f"{theirs}/shares", {"principal_type": "role", "principal": "viewer", "access": "read"}
    ).json()
    body = {"principal_type": "role", "principal": "rep", "access": "read"}
    assert crm.get(theirs, headers=rep).status_code == 404
    assert crm.get(f"{theirs}/shares", headers=rep).status_code == 404
    assert crm.post(f"{theirs}/shares", body, headers=rep).status_code == 404
    assert crm.delete(f"{theirs}/shares/{share['id']}", headers=rep).status_code == 404
    missing = f"{RECORDS}/account/01NOSUCHRECORD000000000000"
    assert crm.get(f"{missing}/shares").status_code == 404
    assert crm.post(f"{missing}/shares", body).status_code == 404
    assert crm.get(f"{RECORDS}/lead/01NOSUCHRECORD000000000000/shares").status_code == 404
    # A share id is only found on its own record.
    mine = team["account"]
    assert crm.delete(f"{mine}/shares/{share['id']}", headers=rep).status_code == 404
    assert crm.delete(f"{mine}/shares/01NOSUCHSHARE0000000000000", headers=rep).status_code == 404
    assert crm.get(f"{theirs}/shares").json()["data"] == [share]


def test_shares_need_a_token(crm: Api, team: dict[str, Any]) -> None:
    url = f"{team['account']}/shares"
    body = {"principal_type": "role", "principal": "viewer", "access": "read"}
    assert crm.client.get(url).status_code == 401
    assert crm.client.post(url, json=body).status_code == 401
    assert crm.client.delete(f"{url}/x").status_code == 401
    assert crm.get(url).json() == {"data": []}
