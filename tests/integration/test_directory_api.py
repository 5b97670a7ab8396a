"""Users, org units, `/me` and `/me/permissions` on SQLite and PostgreSQL: who may manage whom,
what is refused and why, and that a refused change changes nothing."""

from __future__ import annotations

from typing import Any

from conftest import ACCOUNT, OPPORTUNITY, Api

from metacrm.platform.db import writing
from metacrm.platform.users import create_token, get_user

V1 = "/api/v1"
USERS = f"{V1}/users"
UNITS = f"{V1}/org-units"
ROLES = f"{V1}/meta/roles"
RECORDS = f"{V1}/records"
PASSWORD = "a-long-password"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def field_errors(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


def new_user(api: Api, email: str, **body: Any) -> dict[str, Any]:
    response = api.post(USERS, {"email": email, "password": PASSWORD, **body})
    assert response.status_code == 201, response.text
    return response.json()


def new_unit(api: Api, name: str, **body: Any) -> dict[str, Any]:
    response = api.post(UNITS, {"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def make_role(api: Api, document: dict[str, Any]) -> dict[str, Any]:
    response = api.post(ROLES, document)
    assert response.status_code == 201, response.text
    return response.json()


def user_id(api: Api, token: str) -> str:
    response = api.get(f"{V1}/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def all_users(api: Api) -> list[dict[str, Any]]:
    return api.get(USERS).json()["data"]


def all_units(api: Api) -> list[dict[str, Any]]:
    return api.get(UNITS).json()["data"]


# ---- authentication and authorisation -------------------------------------------------------

ENDPOINTS = [
    ("GET", USERS),
    ("POST", USERS),
    ("GET", f"{USERS}/{{user}}"),
    ("PATCH", f"{USERS}/{{user}}"),
    ("GET", UNITS),
    ("POST", UNITS),
    ("GET", f"{UNITS}/{{unit}}"),
    ("PATCH", f"{UNITS}/{{unit}}"),
    ("DELETE", f"{UNITS}/{{unit}}"),
    ("GET", f"{V1}/me"),
    ("GET", f"{V1}/me/permissions"),
]


def test_every_endpoint_answers_401_without_a_valid_token(api: Api) -> None:
    unit = new_unit(api, "sales")
    user = new_user(api, "someone@example.com")
    wrong = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer mcrm_not-a-token"},
        {"Authorization": f"Basic {api.token}"},
        {"Authorization": api.token},
    ]
    for method, template in ENDPOINTS:
        path = template.format(user=user["id"], unit=unit["id"])
        for headers in wrong:
            response = api.client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert [u["email"] for u in all_users(api)] == ["admin@example.com", "someone@example.com"]
    assert [u["name"] for u in all_units(api)] == ["sales"]


def test_admin_endpoints_answer_403_to_non_admins_and_change_nothing(api: Api) -> None:
    unit = new_unit(api, "sales")
    other = new_user(api, "other@example.com")
    token = api.new_user("rep@example.com")
    me = user_id(api, token)
    refused = [
        ("GET", USERS, None),
        ("POST", USERS, {"email": "new@example.com", "password": PASSWORD}),
        ("GET", f"{USERS}/{other['id']}", None),
        ("GET", f"{USERS}/01NOSUCHUSER00000000000000", None),
        ("PATCH", f"{USERS}/{other['id']}", {"name": "Changed"}),
        # Not even on themselves: a user can't give themselves roles or admin rights.
        ("PATCH", f"{USERS}/{me}", {"is_admin": True}),
        ("PATCH", f"{USERS}/{me}", {"name": "Me"}),
        ("POST", UNITS, {"name": "east"}),
        ("PATCH", f"{UNITS}/{unit['id']}", {"label": "Changed"}),
        ("DELETE", f"{UNITS}/{unit['id']}", None),
    ]
    for method, path, body in refused:
        response = api.client.request(method, path, headers=bearer(token), json=body)
        assert response.status_code == 403, (method, path, response.text)
    assert [u["email"] for u in all_users(api)] == [
        "admin@example.com",
        "other@example.com",
        "rep@example.com",
    ]
    assert get_one(api, f"{USERS}/{other['id']}")["name"] == ""
    mine = api.get(f"{USERS}/{me}").json()
    assert mine["is_admin"] is False and mine["name"] == ""
    assert all_units(api) == [unit]
    # What everyone may see: themselves, the org tree (pickers need it), their permissions.
    assert api.get(f"{USERS}/{me}", headers=bearer(token)).json() == mine
    assert api.get(f"{V1}/me", headers=bearer(token)).json() == mine
    assert api.get(UNITS, headers=bearer(token)).json()["data"] == [unit]
    assert api.get(f"{UNITS}/{unit['id']}", headers=bearer(token)).json() == unit
    assert api.get(f"{V1}/me/permissions", headers=bearer(token)).status_code == 200


def get_one(api: Api, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


INVALID_BODIES = [
    (USERS, "POST", {"email": "x@example.com", "password": PASSWORD, "nonsense": 1}),
    (USERS, "POST", {"email": 5, "password": PASSWORD}),
    (f"{USERS}/{{me}}", "PATCH", {"email": "x@example.com"}),
    (UNITS, "POST", {"name": "east", "nonsense": 1}),
    (f"{UNITS}/{{unit}}", "PATCH", {"name": "renamed"}),
]


def test_a_malformed_body_from_an_anonymous_caller_is_401_not_422(api: Api) -> None:
    unit = new_unit(api, "sales")
    me = user_id(api, api.token)
    for template, method, body in INVALID_BODIES:
        path = template.format(me=me, unit=unit["id"])
        response = api.client.request(method, path, json=body)
        assert response.status_code == 401, (method, path, response.text)


def test_a_malformed_body_from_a_non_admin_is_403_not_422(api: Api) -> None:
    unit = new_unit(api, "sales")
    token = api.new_user("rep@example.com")
    me = user_id(api, token)
    for template, method, body in INVALID_BODIES:
        path = template.format(me=me, unit=unit["id"])
        response = api.client.request(method, path, headers=bearer(token), json=body)
        assert response.status_code == 403, (method, path, response.text)


# ---- users ----------------------------------------------------------------------------------


def test_create_a_user_with_roles_unit_and_manager(api: Api) -> None:
    make_role(api, {"name": "rep", "label": {"en": "Rep"}})
    make_role(api, {"name": "viewer", "label": {"en": "Viewer"}})
    unit = new_unit(api, "sales")
    boss = new_user(api, "boss@example.com", name="Boss")
    response = api.post(
        USERS,
        {
            "email": "Rep@Example.COM",
            "password": PASSWORD,
            "name": "Rita Rep",
            "roles": ["viewer", "rep", "rep"],
            "org_unit": unit["id"],
            "manager": boss["id"],
        },
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["location"] == f"/api/v1/users/{user['id']}"
    assert user == {
        "id": user["id"],
        "email": "rep@example.com",
        "name": "Rita Rep",
        "roles": ["rep", "viewer"],
        "is_admin": False,
        "org_unit": unit["id"],
        "manager": boss["id"],
        "is_active": True,
    }
    assert get_one(api, f"{USERS}/{user['id']}") == user
    assert [u["email"] for u in all_users(api)] == [
        "admin@example.com",
        "boss@example.com",
        "rep@example.com",
    ]
    # "admin" among the roles is the admin flag, not a role document.
    admin = new_user(api, "second-admin@example.com", roles=["admin", "rep"])
    assert admin["is_admin"] is True and admin["roles"] == ["rep"]
    flagged = new_user(api, "third-admin@example.com", is_admin=True)
    assert flagged["is_admin"] is True and flagged["roles"] == []


def test_invalid_users_are_refused_with_every_field_error_and_nothing_is_created(
    api: Api,
) -> None:
    make_role(api, {"name": "rep", "label": {"en": "Rep"}})
    ok = {"email": "new@example.com", "password": PASSWORD}
    cases: list[tuple[Any, set[tuple[str, str]]]] = [
        ([ok], {("", "type")}),
        ("new@example.com", {("", "type")}),
        (
            {**ok, "nonsense": 1, "email_address": "x"},
            {("nonsense", "unknown_field"), ("email_address", "unknown_field")},
        ),
        ({**ok, "is_active": True}, {("is_active", "unknown_field")}),
        (
            {"email": 5, "password": ["x"], "name": 1, "roles": "rep", "is_admin": "yes"},
            {
                ("email", "type"),
                ("password", "type"),
                ("name", "type"),
                ("roles", "type"),
                ("is_admin", "type"),
            },
        ),
        ({**ok, "org_unit": 1, "manager": True}, {("org_unit", "type"), ("manager", "type")}),
        ({**ok, "email": None, "name": None}, {("email", "type"), ("name", "type")}),
        ({**ok, "roles": ["rep", 1]}, {("roles", "type")}),
        ({"email": "not-an-email", "password": PASSWORD}, {("email", "format")}),
        ({"email": "two@@example.com", "password": PASSWORD}, {("email", "format")}),
        ({"email": "a b@example.com", "password": PASSWORD}, {("email", "format")}),
        ({"email": "new@example.com", "password": "short"}, {("password", "min_length")}),
        ({"email": "new@example.com", "password": "1234567"}, {("password", "min_length")}),
        ({}, {("email", "format"), ("password", "min_length")}),
        ({**ok, "roles": ["rep", "ghost"]}, {("roles", "unknown_role")}),
        (
            {**ok, "org_unit": "01NOSUCHUNIT00000000000000", "manager": "01NOSUCHUSER000000000000"},
            {("org_unit", "not_found"), ("manager", "not_found")},
        ),
    ]
    for body, expected in cases:
        assert field_errors(api.post(USERS, body)) == expected, body
    assert [u["email"] for u in all_users(api)] == ["admin@example.com"]
    unknown_role = api.post(USERS, {**ok, "roles": ["ghost", "rep", "phantom"]}).json()
    assert [e["message"] for e in unknown_role["errors"]] == [
        "no role named 'ghost'",
        "no role named 'phantom'",
    ]


def test_a_second_user_with_the_same_email_is_a_conflict(api: Api) -> None:
    new_user(api, "rep@example.com", name="First")
    for email in ("rep@example.com", "REP@example.com", "Rep@Example.Com"):
        response = api.post(USERS, {"email": email, "password": PASSWORD, "name": "Second"})
        assert response.status_code == 409, response.text
        assert "already exists" in response.json()["detail"]
    assert [(u["email"], u["name"]) for u in all_users(api)][1:] == [("rep@example.com", "First")]


def test_change_a_user(api: Api) -> None:
    make_role(api, {"name": "rep", "label": {"en": "Rep"}})
    make_role(api, {"name": "viewer", "label": {"en": "Viewer"}})
    sales, east = new_unit(api, "sales"), new_unit(api, "east")
    boss, other_boss = new_user(api, "boss@example.com"), new_user(api, "boss2@example.com")
    user = new_user(api, "rep@example.com", roles=["rep"], org_unit=sales["id"])
    url = f"{USERS}/{user['id']}"
    changed = api.patch(
        url, {"name": "Rita", "roles": ["viewer"], "org_unit": east["id"], "manager": boss["id"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        **user,
        "name": "Rita",
        "roles": ["viewer"],
        "org_unit": east["id"],
        "manager": boss["id"],
    }
    # Parts left out stay as they are.
    assert api.patch(url, {"manager": other_boss["id"]}).json() == {
        **changed.json(),
        "manager": other_boss["id"],
    }
    # null clears the unit and the manager.
    cleared = api.patch(url, {"org_unit": None, "manager": None}).json()
    assert cleared["org_unit"] is None and cleared["manager"] is None
    assert cleared["name"] == "Rita" and cleared["roles"] == ["viewer"]
    assert api.patch(url, {"roles": []}).json()["roles"] == []
    promoted = api.patch(url, {"roles": ["admin", "rep"]}).json()
    assert promoted["is_admin"] is True and promoted["roles"] == ["rep"]
    demoted = api.patch(url, {"is_admin": False}).json()
    assert demoted["is_admin"] is False and demoted["roles"] == ["rep"]
    assert api.patch(url, {"password": "another-long-one"}).status_code == 200
    assert get_one(api, url) == demoted


def test_invalid_user_changes_are_refused_and_change_nothing(api: Api) -> None:
    make_role(api, {"name": "rep", "label": {"en": "Rep"}})
    unit = new_unit(api, "sales")
    user = new_user(api, "rep@example.com", name="Rita", roles=["rep"], org_unit=unit["id"])
    url = f"{USERS}/{user['id']}"
    cases: list[tuple[Any, set[tuple[str, str]]]] = [
        ([], {("", "type")}),
        ({"email": "new@example.com"}, {("email", "unknown_field")}),
        ({"id": "x", "name": "Other"}, {("id", "unknown_field")}),
        ({"is_active": "no"}, {("is_active", "type")}),
        ({"is_active": None}, {("is_active", "type")}),
        ({"name": None}, {("name", "type")}),
        ({"roles": None}, {("roles", "type")}),
        ({"name": "Other", "roles": ["ghost"]}, {("roles", "unknown_role")}),
        ({"name": "Other", "password": "short"}, {("password", "min_length")}),
        ({"name": "Other", "org_unit": "01NOSUCHUNIT00000000000000"}, {("org_unit", "not_found")}),
        ({"name": "Other", "manager": "01NOSUCHUSER00000000000000"}, {("manager", "not_found")}),
        ({"name": "Other", "manager": user["id"]}, {("manager", "cycle")}),
    ]
    for body, expected in cases:
        assert field_errors(api.patch(url, body)) == expected, body
    assert get_one(api, url) == user
    missing = api.patch(f"{USERS}/01NOSUCHUSER00000000000000", {"name": "x"})
    assert missing.status_code == 404
    assert api.get(f"{USERS}/01NOSUCHUSER00000000000000").status_code == 404


def test_a_manager_cycle_is_refused_and_nothing_changes(api: Api) -> None:
    a = new_user(api, "a@example.com", name="A")
    b = new_user(api, "b@example.com", name="B", manager=a["id"])
    c = new_user(api, "c@example.com", name="C", manager=b["id"])
    for manager in (b["id"], c["id"], a["id"]):
        response = api.patch(f"{USERS}/{a['id']}", {"name": "Changed", "manager": manager})
        assert field_errors(response) == {("manager", "cycle")}
    # B below C while C is below B.
    assert field_errors(api.patch(f"{USERS}/{b['id']}", {"manager": c["id"]})) == {
        ("manager", "cycle")
    }
    assert get_one(api, f"{USERS}/{a['id']}") == a
    assert get_one(api, f"{USERS}/{b['id']}") == b
    assert get_one(api, f"{USERS}/{c['id']}") == c
    # Breaking the chain first makes the same move legal.
    assert api.patch(f"{USERS}/{b['id']}", {"manager": None}).status_code == 200
    moved = api.patch(f"{USERS}/{a['id']}", {"manager": c["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["manager"] == c["id"]


def test_an_admin_cannot_freeze_themselves_or_drop_their_own_admin_rights(api: Api) -> None:
    me = get_one(api, f"{V1}/me")
    url = f"{USERS}/{me['id']}"
    assert field_errors(api.patch(url, {"is_active": False})) == {("is_active", "self")}
    assert field_errors(api.patch(url, {"is_admin": False})) == {("is_admin", "self")}
    assert field_errors(api.patch(url, {"name": "Me", "is_admin": False})) == {("is_admin", "self")}
    assert get_one(api, f"{V1}/me") == me


def test_freezing_a_user_revokes_their_tokens_at_once(api: Api) -> None:
    token = api.new_user("rep@example.com")
    second = None
    with writing(api.engine) as conn:
        user = get_user(conn, user_id(api, token))
        second = create_token(conn, user, "second")
    assert api.get(f"{V1}/me", headers=bearer(second)).status_code == 200
    frozen = api.patch(f"{USERS}/{user.id}", {"is_active": False})
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["is_active"] is False
    for revoked in (token, second):
        for path in (f"{V1}/me", f"{V1}/me/permissions", f"{USERS}/{user.id}", UNITS):
            assert api.get(path, headers=bearer(revoked)).status_code == 401, path
    listed = {u["email"]: u["is_active"] for u in all_users(api)}
    assert listed == {"admin@example.com": True, "rep@example.com": False}
    # Reactivating does not bring the revoked tokens back; a new one works.
    thawed = api.patch(f"{USERS}/{user.id}", {"is_active": True})
    assert thawed.status_code == 200 and thawed.json()["is_active"] is True
    for revoked in (token, second):
        assert api.get(f"{V1}/me", headers=bearer(revoked)).status_code == 401
    with writing(api.engine) as conn:
        fresh = create_token(conn, get_user(conn, user.id))
    assert api.get(f"{V1}/me", headers=bearer(fresh)).json()["email"] == "rep@example.com"


def test_a_frozen_user_can_still_be_changed_and_stays_frozen(api: Api) -> None:
    user = new_user(api, "rep@example.com")
    api.patch(f"{USERS}/{user['id']}", {"is_active": False})
    renamed = api.patch(f"{USERS}/{user['id']}", {"name": "Gone"})
    assert renamed.status_code == 200
    assert renamed.json()["is_active"] is False and renamed.json()["name"] == "Gone"


def test_role_changes_on_a_user_apply_to_their_next_request(api: Api) -> None:
    api.make_entity(ACCOUNT)
    make_role(
        api,
        {
            "name": "reader",
            "label": {"en": "R"},
            "entities": {"account": {"actions": {"read": "all"}}},
        },
    )
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    token = api.new_user("rep@example.com")
    me = user_id(api, token)
    assert api.get(f"{RECORDS}/account", headers=bearer(token)).status_code == 403
    api.patch(f"{USERS}/{me}", {"roles": ["reader"]})
    listed = api.get(f"{RECORDS}/account", headers=bearer(token))
    assert listed.status_code == 200 and [r["name"] for r in listed.json()["data"]] == ["Acme"]
    api.patch(f"{USERS}/{me}", {"roles": []})
    assert api.get(f"{RECORDS}/account", headers=bearer(token)).status_code == 403
    api.patch(f"{USERS}/{me}", {"is_admin": True})
    assert api.get(f"{RECORDS}/account", headers=bearer(token)).status_code == 200
    assert api.get(USERS, headers=bearer(token)).status_code == 200


# ---- org units ------------------------------------------------------------------------------


def test_build_and_reshape_the_org_tree(api: Api) -> None:
    head = new_user(api, "head@example.com")
    sales = new_unit(api, "sales", label="Sales")
    response = api.post(UNITS, {"name": "east", "parent": sales["id"], "head": head["id"]})
    assert response.status_code == 201, response.text
    east = response.json()
    assert response.headers["location"] == f"/api/v1/org-units/{east['id']}"
    assert east == {
        "id": east["id"],
        "name": "east",
        "label": "east",
        "parent": sales["id"],
        "head": head["id"],
    }
    assert sales == {
        "id": sales["id"],
        "name": "sales",
        "label": "Sales",
        "parent": None,
        "head": None,
    }
    west = new_unit(api, "west", parent=sales["id"])
    assert [u["name"] for u in all_units(api)] == ["east", "sales", "west"]
    assert get_one(api, f"{UNITS}/{east['id']}") == east
    relabelled = api.patch(f"{UNITS}/{east['id']}", {"label": "East coast"})
    assert relabelled.json() == {**east, "label": "East coast"}
    moved = api.patch(f"{UNITS}/{west['id']}", {"parent": east["id"]}).json()
    assert moved["parent"] == east["id"]
    to_root = api.patch(f"{UNITS}/{west['id']}", {"parent": None, "head": head["id"]}).json()
    assert to_root["parent"] is None and to_root["head"] == head["id"]
    headless = api.patch(f"{UNITS}/{west['id']}", {"head": None}).json()
    assert headless == {**to_root, "head": None}


def test_invalid_org_units_are_refused_and_nothing_is_created(api: Api) -> None:
    sales = new_unit(api, "sales")
    cases: list[tuple[Any, set[tuple[str, str]]]] = [
        ("sales", {("", "type")}),
        ({"name": "east", "nonsense": 1}, {("nonsense", "unknown_field")}),
        (
            {"name": 5, "label": 1, "parent": 2},
            {("name", "type"), ("label", "type"), ("parent", "type")},
        ),
        ({"name": None}, {("name", "type")}),
        ({"name": "east", "label": None}, {("label", "type")}),
        ({}, {("name", "pattern")}),
        ({"name": "East Coast"}, {("name", "pattern")}),
        ({"name": "1east"}, {("name", "pattern")}),
        ({"name": "e" * 64}, {("name", "pattern")}),
        ({"name": "east", "label": ""}, {("label", "type")}),
        ({"name": "east", "label": "x" * 201}, {("label", "type")}),
        (
            {
                "name": "east",
                "parent": "01NOSUCHUNIT00000000000000",
                "head": "01NOSUCHUSER0000000000000",
            },
            {("parent", "not_found"), ("head", "not_found")},
        ),
    ]
    for body, expected in cases:
        assert field_errors(api.post(UNITS, body)) == expected, body
    assert all_units(api) == [sales]
    duplicate = api.post(UNITS, {"name": "sales", "label": "Again"})
    assert duplicate.status_code == 409, duplicate.text
    assert all_units(api) == [sales]


def test_moving_a_unit_under_itself_or_its_own_subtree_is_refused(api: Api) -> None:
    sales = new_unit(api, "sales")
    east = new_unit(api, "east", parent=sales["id"])
    boston = new_unit(api, "boston", parent=east["id"])
    for parent in (sales["id"], east["id"], boston["id"]):
        response = api.patch(f"{UNITS}/{sales['id']}", {"label": "Changed", "parent": parent})
        assert field_errors(response) == {("parent", "cycle")}
    assert field_errors(api.patch(f"{UNITS}/{east['id']}", {"parent": boston["id"]})) == {
        ("parent", "cycle")
    }
    assert {u["id"]: u for u in all_units(api)} == {u["id"]: u for u in (sales, east, boston)}
    for body, expected in [
        ({"name": "renamed"}, {("name", "unknown_field")}),
        ({"parent": "01NOSUCHUNIT00000000000000"}, {("parent", "not_found")}),
        ({"head": "01NOSUCHUSER00000000000000"}, {("head", "not_found")}),
        ({"label": None}, {("label", "type")}),
        ({"label": ""}, {("label", "type")}),
    ]:
        assert field_errors(api.patch(f"{UNITS}/{east['id']}", body)) == expected, body
    assert get_one(api, f"{UNITS}/{east['id']}") == east
    # Sideways is fine: boston moves up to sales.
    assert api.patch(f"{UNITS}/{boston['id']}", {"parent": sales["id"]}).status_code == 200


def test_only_empty_leaf_units_can_be_deleted(api: Api) -> None:
    sales = new_unit(api, "sales")
    east = new_unit(api, "east", parent=sales["id"])
    member = new_user(api, "rep@example.com", org_unit=east["id"])
    with_children = api.delete(f"{UNITS}/{sales['id']}")
    assert with_children.status_code == 409
    assert "1 unit(s) below it" in with_children.json()["detail"]
    with_members = api.delete(f"{UNITS}/{east['id']}")
    assert with_members.status_code == 409
    assert "1 user(s) in it" in with_members.json()["detail"]
    assert len(all_units(api)) == 2
    api.patch(f"{USERS}/{member['id']}", {"org_unit": None})
    assert api.delete(f"{UNITS}/{east['id']}").status_code == 204
    assert api.get(f"{UNITS}/{east['id']}").status_code == 404
    assert api.delete(f"{UNITS}/{east['id']}").status_code == 404
    assert api.delete(f"{UNITS}/{sales['id']}").status_code == 204
    assert all_units(api) == []
    # A user can't join a unit that is gone.
    gone = api.patch(f"{USERS}/{member['id']}", {"org_unit": east["id"]})
    assert field_errors(gone) == {("org_unit", "not_found")}


def test_unknown_units_are_404(api: Api) -> None:
    missing = f"{UNITS}/01NOSUCHUNIT00000000000000"
    assert api.get(missing).status_code == 404
    assert api.patch(missing, {"label": "x"}).status_code == 404
    assert api.delete(missing).status_code == 404


# ---- me and my permissions ------------------------------------------------------------------

REP = {
    "name": "rep",
    "label": {"en": "Rep"},
    "entities": {
        "account": {
            "actions": {"read": "own", "update": "subordinates", "share": "own"},
            "record_rules": [
                {
                    "name": "no_energy",
                    "condition": 'industry != "energy"',
                    "effect": "narrow",
                    "actions": ["update"],
                }
            ],
            "fields": {"website": {"access": "masked"}, "industry": {"access": "hidden"}},
        }
    },
}
AUDITOR = {
    "name": "auditor",
    "label": {"en": "Auditor"},
    "entities": {"account": {"actions": {"read": "all", "export": "all"}}},
}


def test_me_is_the_caller(api: Api) -> None:
    unit = new_unit(api, "sales")
    token = api.new_user("rep@example.com", org_unit=unit["id"])
    me = api.get(f"{V1}/me", headers=bearer(token)).json()
    assert me == {
        "id": me["id"],
        "email": "rep@example.com",
        "name": "",
        "roles": [],
        "is_admin": False,
        "org_unit": unit["id"],
        "manager": None,
        "is_active": True,
    }
    assert get_one(api, f"{V1}/me")["email"] == "admin@example.com"


def test_my_permissions_as_an_admin(api: Api) -> None:
    api.make_entity(ACCOUNT)
    permissions = get_one(api, f"{V1}/me/permissions")
    everything = {"scopes": ["all"], "rules": False}
    free = {"read": "visible", "filter": True, "create": True, "update": True}
    assert permissions == {
        "user": get_one(api, f"{V1}/me"),
        "is_admin": True,
        "entities": {
            "account": {
                "actions": {
                    action: everything
                    for action in (
                        "read",
                        "create",
                        "update",
                        "delete",
                        "export",
                        "import",
                        "transfer",
                        "share",
                    )
                },
                "fields": {"name": free, "industry": free, "website": free},
            }
        },
    }


def test_my_permissions_as_a_rep(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    make_role(api, REP)
    token = api.new_user("rep@example.com", roles=("rep",))
    permissions = api.get(f"{V1}/me/permissions", headers=bearer(token)).json()
    assert permissions == {
        "user": api.get(f"{V1}/me", headers=bearer(token)).json(),
        "is_admin": False,
        "entities": {
            "account": {
                "actions": {
                    "read": {"scopes": ["own"], "rules": False},
                    "update": {"scopes": ["subordinates"], "rules": True},
                    "share": {"scopes": ["own"], "rules": False},
                },
                "fields": {
                    "name": {"read": "visible", "filter": True, "create": False, "update": True},
                    "industry": {
                        "read": "hidden",
                        "filter": False,
                        "create": False,
                        "update": False,
                    },
                    "website": {
                        "read": "masked",
                        "filter": False,
                        "create": False,
                        "update": False,
                    },
                },
            }
        },
    }


def test_my_permissions_with_two_roles_and_with_none(api: Api) -> None:
    api.make_entity(ACCOUNT)
    make_role(api, REP)
    make_role(api, AUDITOR)
    token = api.new_user("rep@example.com", roles=("rep", "auditor"))
    account = api.get(f"{V1}/me/permissions", headers=bearer(token)).json()["entities"]["account"]
    assert account == {
        "actions": {
            "read": {"scopes": ["all", "own"], "rules": False},
            "update": {"scopes": ["subordinates"], "rules": True},
            "export": {"scopes": ["all"], "rules": False},
            "share": {"scopes": ["own"], "rules": False},
        },
        "fields": {
            "name": {"read": "visible", "filter": True, "create": False, "update": True},
            "industry": {"read": "varies", "filter": False, "create": False, "update": False},
            "website": {"read": "varies", "filter": False, "create": False, "update": False},
        },
    }
    nobody = api.new_user("nobody@example.com")
    assert api.get(f"{V1}/me/permissions", headers=bearer(nobody)).json()["entities"] == {}


def test_my_permissions_follow_role_changes_on_the_next_request(api: Api) -> None:
    api.make_entity(ACCOUNT)
    make_role(api, REP)
    token = api.new_user("rep@example.com", roles=("rep",))
    before = api.get(f"{V1}/me/permissions", headers=bearer(token)).json()["entities"]
    assert set(before["account"]["actions"]) == {"read", "update", "share"}
    replaced = api.put(
        f"{ROLES}/rep", {**REP, "entities": {"account": {"actions": {"delete": "own"}}}}
    )
    assert replaced.status_code == 200, replaced.text
    after = api.get(f"{V1}/me/permissions", headers=bearer(token)).json()["entities"]
    assert after["account"]["actions"] == {"delete": {"scopes": ["own"], "rules": False}}


def test_a_create_only_role_can_create_what_my_permissions_promises(api: Api) -> None:
    api.make_entity(ACCOUNT)
    make_role(
        api,
        {
            "name": "intake",
            "label": {"en": "Intake"},
            "entities": {"account": {"actions": {"create": "own"}}},
        },
    )
    token = api.new_user("intake@example.com", roles=("intake",))
    fields = api.get(f"{V1}/me/permissions", headers=bearer(token)).json()["entities"]["account"][
        "fields"
    ]
    assert fields["name"]["create"] is True
    created = api.post(f"{RECORDS}/account", {"name": "From the web form"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    listed = api.get(f"{RECORDS}/account").json()["data"]
    assert [r["name"] for r in listed] == ["From the web form"]


def test_text_no_database_keeps_is_422_at_its_field_and_saves_nothing(api: Api) -> None:
    unit = new_unit(api, "sales")
    user = new_user(api, "user@example.com")
    ok = {"email": "new@example.com", "password": PASSWORD}
    cases = [
        ("POST", USERS, {**ok, "name": "n" * 201}, "name"),
        ("POST", USERS, {**ok, "name": "a\x00b"}, "name"),
        ("POST", USERS, {**ok, "email": "a\x00b@example.com"}, "email"),
        ("POST", USERS, {**ok, "org_unit": "a\x00b"}, "org_unit"),
        ("POST", USERS, {**ok, "manager": "a\x00b"}, "manager"),
        ("POST", USERS, {**ok, "roles": ["a\x00b"]}, "roles"),
        ("PATCH", f"{USERS}/{user['id']}", {"name": "n" * 201}, "name"),
        ("PATCH", f"{USERS}/{user['id']}", {"manager": "a\x00b"}, "manager"),
        ("POST", UNITS, {"name": "east", "label": "a\x00b"}, "label"),
        ("POST", UNITS, {"name": "east", "parent": "a\x00b"}, "parent"),
        ("POST", UNITS, {"name": "east", "head": "a\x00b"}, "head"),
        ("PATCH", f"{UNITS}/{unit['id']}", {"parent": "a\x00b"}, "parent"),
    ]
    wrong = []
    for method, path, body, field in cases:
        response = api.client.request(method, path, json=body, headers=api.headers())
        fields = {e["field"] for e in response.json().get("errors", [])}
        if response.status_code != 422 or fields != {field}:
            wrong.append((method, path, field, response.status_code))
    assert wrong == []
    assert [u["email"] for u in all_users(api)] == ["admin@example.com", "user@example.com"]
    assert get_one(api, f"{USERS}/{user['id']}") == user
    assert all_units(api) == [unit]


def test_an_empty_id_is_an_unknown_reference_on_patch_as_on_post(api: Api) -> None:
    sales = new_unit(api, "sales")
    east = new_unit(api, "east", parent=sales["id"])
    boss = new_user(api, "boss@example.com")
    user = new_user(api, "rep@example.com", org_unit=sales["id"], manager=boss["id"])
    posted = api.post(USERS, {"email": "x@example.com", "password": PASSWORD, "org_unit": ""})
    assert field_errors(posted) == {("org_unit", "not_found")}
    for body, expected in [
        ({"org_unit": ""}, {("org_unit", "not_found")}),
        ({"manager": ""}, {("manager", "not_found")}),
    ]:
        assert field_errors(api.patch(f"{USERS}/{user['id']}", body)) == expected, body
    assert field_errors(api.patch(f"{UNITS}/{east['id']}", {"parent": ""})) == {
        ("parent", "not_found")
    }
    assert field_errors(api.patch(f"{UNITS}/{east['id']}", {"head": ""})) == {("head", "not_found")}
