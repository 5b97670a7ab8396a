"""Field permissions that spare the record's owner (`"except_owner": true`) over HTTP on SQLite
and PostgreSQL: a manager sees the mobile of the contacts they own in full and `139****4321` on
their reps' — in a record, lists (with and without `owner` among `fields`), expanded lookups,
history, exports, record actions' results and the stage timeline; roles combined; the owner
writes what they see in full, nobody else; and role documents that misuse it are refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Api

from metacrm.platform.db import reading
from metacrm.platform.users import find_user
from metacrm.runtime.exporting import export_records

V1 = "/api/v1"
ROLES = f"{V1}/meta/roles"
RECORDS = f"{V1}/records"
CONTACTS = f"{RECORDS}/contact"

CUSTOMER = {
    "name": "customer",
    "label": {"en": "Customer"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "phone", "type": "phone"},
    ],
}
CONTACT = {
    "name": "contact",
    "label": {"en": "Contact", "zh-CN": "联系人"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "customer", "type": "lookup", "target": "customer"},
        {"name": "mobile", "type": "phone"},
        {"name": "email", "type": "email"},
        {
            "name": "status",
            "type": "picklist",
            "default": "new",
            "options": [{"value": "new"}, {"value": "active"}, {"value": "closed"}],
        },
        {"name": "vip", "type": "boolean", "default": False},
    ],
}
STATUS = {
    "name": "contact_status",
    "label": {"en": "Status"},
    "entity": "contact",
    "field": "status",
    "stages": [
        {"key": k, "label": {"en": k}, "category": c, "probability": p}
        for k, c, p in (("new", "open", 10), ("active", "open", 50), ("closed", "won", 100))
    ],
}
MARK_VIP = {
    "name": "mark_vip",
    "label": {"en": "Mark VIP"},
    "entity": "contact",
    "permission": "update",
    "steps": [{"type": "set_fields", "values": {"vip": "true"}}],
}

MASKED_BUT_OWNER = {"access": "masked", "except_owner": True}
HIDDEN_BUT_OWNER = {"access": "hidden", "except_owner": True}
SALES_REP = {
    "name": "sales_rep",
    "label": {"en": "Sales rep"},
    "entities": {
        "contact": {
            "actions": {"read": "own", "create": "own", "update": "own"},
            "fields": {"mobile": MASKED_BUT_OWNER},
        },
        "customer": {"actions": {"read": "own", "create": "own"}},
    },
}
SALES_MANAGER = {
    "name": "sales_manager",
    "label": {"en": "Sales manager"},
    "entities": {
        "contact": {
            "actions": {
                "read": "subordinates",
                "create": "subordinates",
                "update": "subordinates",
                "export": "subordinates",
            },
            "fields": {
                "mobile": {**MASKED_BUT_OWNER, "mask": {"keep_start": 3, "keep_end": 4}},
                "email": HIDDEN_BUT_OWNER,
                "status": HIDDEN_BUT_OWNER,
            },
        },
        "customer": {
            "actions": {"read": "subordinates"},
            "fields": {"phone": MASKED_BUT_OWNER},
        },
    },
}
# Masks and hides the same fields for everyone, owners included.
AUDITOR = {
    "name": "auditor",
    "label": {"en": "Auditor"},
    "entities": {
        "contact": {
            "actions": {"read": "all", "export": "all"},
            "fields": {
                "mobile": {"access": "masked"},
                "email": {"access": "hidden"},
                "status": {"access": "hidden"},
            },
        }
    },
}
# Says nothing about fields: everything in full.
VIEWER = {
    "name": "viewer",
    "label": {"en": "Viewer"},
    "entities": {"contact": {"actions": {"read": "all"}}},
}

# key -> (owner, customer key, mobile, email)
CONTACTS_MADE = {
    "mgr-1": ("manager", "mgr-cust", "13812345678", "boss@example.com"),
    "rep-1": ("rep", "rep-cust", "13987654321", "rep@example.com"),
    "far-1": ("far", None, "13700001111", "far@example.com"),
}
CUSTOMERS_MADE = {"mgr-cust": ("manager", "02112345678"), "rep-cust": ("rep", "02187654321")}


@dataclass
class Desk:
    api: Api
    tokens: dict[str, str]
    users: dict[str, str]
    ids: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who != "admin" else {}

    def get(self, who: str, key: str, **params: str) -> dict[str, Any]:
        response = self.api.get(f"{CONTACTS}/{self.ids[key]}", params=params, headers=self.as_(who))
        assert response.status_code == 200, response.text
        return response.json()

    def listed(self, who: str, **params: str) -> dict[str, dict[str, Any]]:
        """The contacts the person lists, by key."""
        response = self.api.get(CONTACTS, params=params, headers=self.as_(who))
        assert response.status_code == 200, response.text
        return {self.key(r["id"]): r for r in response.json()["data"]}

    def key(self, record_id: str) -> str:
        return next(k for k, v in self.ids.items() if v == record_id)

    def patch(self, who: str, key: str, body: Any) -> httpx.Response:
        return self.api.patch(f"{CONTACTS}/{self.ids[key]}", body, headers=self.as_(who))

    def admin_view(self, key: str) -> dict[str, Any]:
        return self.get("admin", key)


def made(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def desk(api: Api) -> Desk:
    """A manager with a rep below them and a rep elsewhere (`far`); people holding the manager
    role with a masking role (`strict`) or with a role showing everything (`relaxed`) and
    managing the same rep; contacts and customers of each."""
    for doc in (CUSTOMER, CONTACT):
        api.make_entity(doc)
    made(api.post(f"{V1}/meta/pipelines", STATUS))
    made(api.post(f"{V1}/meta/actions", MARK_VIP))
    for role in (SALES_REP, SALES_MANAGER, AUDITOR, VIEWER):
        made(api.post(ROLES, role))
    tokens: dict[str, str] = {}
    users: dict[str, str] = {}

    def person(key: str, roles: tuple[str, ...], manager: str | None = None) -> None:
        place = {"manager": users[manager]} if manager else {}
        tokens[key] = api.new_user(f"{key}@example.com", roles=roles, **place)
        users[key] = api.get(f"{V1}/me", headers={"Authorization": f"Bearer {tokens[key]}"}).json()[
            "id"
        ]

    person("manager", ("sales_manager",))
    person("rep", ("sales_rep",), "manager")
    person("far", ("sales_rep",))
    person("strict", ("auditor", "sales_manager"))
    person("relaxed", ("sales_manager", "viewer"))
    ids: dict[str, str] = {}
    for key, (owner, phone) in CUSTOMERS_MADE.items():
        body = {"name": key, "phone": phone, "owner": users[owner]}
        ids[key] = made(api.post(f"{RECORDS}/customer", body))["id"]
    for key, (owner, customer, mobile, email) in CONTACTS_MADE.items():
        body = {
            "name": key,
            "mobile": mobile,
            "email": email,
            "owner": users[owner],
            "customer": ids[customer] if customer else None,
        }
        ids[key] = made(api.post(CONTACTS, body))["id"]
    return Desk(api, tokens, users, ids)


def make_rep_report_to(desk: Desk, boss: str) -> None:
    """Put rep under another manager (the reporting line decides `subordinates`)."""
    response = desk.api.patch(f"{V1}/users/{desk.users['rep']}", {"manager": desk.users[boss]})
    assert response.status_code == 200, response.text


# ---- reading ----------------------------------------------------------------------------------


def test_a_manager_sees_their_own_contacts_mobile_and_a_mask_on_their_reps(desk: Desk) -> None:
    own = desk.get("manager", "mgr-1")
    assert own["mobile"] == "13812345678"
    assert own["email"] == "boss@example.com" and own["status"] == "new"
    theirs = desk.get("manager", "rep-1")
    assert theirs["mobile"] == "139****4321"
    assert "email" not in theirs and "status" not in theirs
    # The owner of the rep's contact (the rep) sees it whole; so does the admin.
    assert desk.get("rep", "rep-1")["mobile"] == "13987654321"
    assert desk.admin_view("rep-1")["mobile"] == "13987654321"
    listed = desk.listed("manager")
    assert set(listed) == {"mgr-1", "rep-1"}
    assert listed["mgr-1"] == own
    assert listed["rep-1"] == theirs


def test_a_list_decides_by_owner_even_when_fields_leaves_owner_out(desk: Desk) -> None:
    listed = desk.listed("manager", fields="mobile,email")
    assert listed == {
        "mgr-1": {"id": desk.ids["mgr-1"], "mobile": "13812345678", "email": "boss@example.com"},
        "rep-1": {"id": desk.ids["rep-1"], "mobile": "139****4321"},
    }
    with_owner = desk.listed("manager", fields="mobile,owner")
    assert with_owner == {
        "mgr-1": {"id": desk.ids["mgr-1"], "mobile": "13812345678", "owner": desk.users["manager"]},
        "rep-1": {"id": desk.ids["rep-1"], "mobile": "139****4321", "owner": desk.users["rep"]},
    }
    one = desk.get("manager", "rep-1", fields="email,mobile")
    assert one == {"id": desk.ids["rep-1"], "mobile": "139****4321"}


def test_filtering_sorting_or_searching_a_field_sparing_owners_is_refused(desk: Desk) -> None:
    """A filter runs over every readable record: `mobile startswith "1398"` would tell the
    manager about the rep's mobile, which they see masked."""
    manager = desk.as_("manager")
    for params in (
        {"filter": 'mobile startswith "1398"'},
        {"filter": 'email == "rep@example.com"'},
        {"sort": "mobile"},
    ):
        response = desk.api.get(CONTACTS, params=params, headers=manager)
        assert response.status_code == 400, (params, response.text)
    found = desk.api.get(CONTACTS, params={"q": "13987654321"}, headers=manager)
    assert found.status_code == 200 and found.json()["data"] == [], found.text
    # The admin, with no field rules, finds it.
    assert len(desk.api.get(CONTACTS, params={"q": "13987654321"}).json()["data"]) == 1


def test_expanded_lookups_are_decided_by_the_looked_up_records_owner(desk: Desk) -> None:
    own = desk.get("manager", "mgr-1", expand="customer")
    assert own["customer"]["phone"] == "02112345678"
    theirs = desk.get("manager", "rep-1", expand="customer")
    assert theirs["customer"]["phone"] == "021****4321"
    listed = desk.listed("manager", expand="customer")
    assert listed["mgr-1"]["customer"] == own["customer"]
    assert listed["rep-1"]["customer"] == theirs["customer"]


def test_history_is_shown_in_full_to_the_owner_and_masked_to_others(desk: Desk) -> None:
    made(desk.patch("admin", "rep-1", {"mobile": "13900000000", "email": "new@example.com"}), 200)
    made(desk.patch("admin", "mgr-1", {"mobile": "13800000000"}), 200)

    def changes(who: str, key: str) -> list[dict[str, Any]]:
        response = desk.api.get(f"{CONTACTS}/{desk.ids[key]}/history", headers=desk.as_(who))
        return [e["changes"] for e in made(response, 200)["data"]]

    theirs = changes("manager", "rep-1")
    assert theirs[0] == {"mobile": {"old": "139****4321", "new": "139****0000"}}
    assert theirs[1]["mobile"] == {"old": None, "new": "139****4321"}
    assert "email" not in theirs[1] and "status" not in theirs[1]
    own = changes("manager", "mgr-1")
    assert own[0] == {"mobile": {"old": "13812345678", "new": "13800000000"}}
    assert own[1]["email"] == {"old": None, "new": "boss@example.com"}
    assert changes("rep", "rep-1")[0]["mobile"] == {"old": "13987654321", "new": "13900000000"}


def test_an_export_shows_each_row_as_its_owner_decides(desk: Desk) -> None:
    with reading(desk.api.engine) as conn:
        service = desk.api.records(conn, find_user(conn, "manager@example.com"))
        columns, rows = export_records(service, "contact")
        exported = {desk.key(r["id"]): r for r in rows}
    # A field hidden except on the caller's own records is a column; other rows leave it empty.
    assert {"mobile", "email", "status"} <= set(columns)
    assert set(exported) == {"mgr-1", "rep-1"}
    assert exported["mgr-1"]["mobile"] == "13812345678"
    assert exported["mgr-1"]["email"] == "boss@example.com"
    assert exported["rep-1"]["mobile"] == "139****4321"
    assert "email" not in exported["rep-1"] and "status" not in exported["rep-1"]


def test_a_record_actions_result_shows_the_record_as_its_owner_decides(desk: Desk) -> None:
    def run(key: str) -> dict[str, Any]:
        path = f"{CONTACTS}/{desk.ids[key]}/actions/mark_vip"
        return made(desk.api.post(path, {}, headers=desk.as_("manager")), 200)["result"]["record"]

    theirs = run("rep-1")
    assert theirs["vip"] is True and theirs["mobile"] == "139****4321"
    assert "email" not in theirs
    own = run("mgr-1")
    assert own["vip"] is True and own["mobile"] == "13812345678"


def test_the_stage_timeline_of_a_field_hidden_but_from_the_owner(desk: Desk) -> None:
    def timeline(key: str) -> httpx.Response:
        path = f"{CONTACTS}/{desk.ids[key]}/stages"
        return desk.api.get(path, headers=desk.as_("manager"))

    assert made(timeline("mgr-1"), 200)["current"]["stage"] == "new"
    # The rep's contact hides its status from the manager: its timeline would tell it.
    assert timeline("rep-1").status_code == 404


# ---- several roles ----------------------------------------------------------------------------


def test_a_sparing_role_beats_a_masking_one_only_on_the_callers_records(desk: Desk) -> None:
    """strict holds the manager role (sparing owners) and the auditor role (masking for all)."""
    make_rep_report_to(desk, "strict")
    body = {"name": "strict-1", "mobile": "13611112222", "email": "s@example.com"}
    desk.ids["strict-1"] = made(desk.api.post(CONTACTS, body, headers=desk.as_("strict")))["id"]
    listed = desk.listed("strict")
    assert set(listed) == {"strict-1", "mgr-1", "rep-1", "far-1"}
    own = listed["strict-1"]
    assert own["mobile"] == "13611112222" and own["email"] == "s@example.com"
    for key, masked in (("rep-1", "139****4321"), ("mgr-1", "138****5678")):
        other = listed[key]
        assert other["mobile"] == masked and "email" not in other, key
    assert listed["far-1"]["mobile"] == "137****1111"
    assert desk.get("strict", "strict-1") == own


def test_a_role_without_the_rule_shows_the_field_in_full_on_every_record(desk: Desk) -> None:
    """relaxed holds the manager role and a viewer role that says nothing about fields."""
    make_rep_report_to(desk, "relaxed")
    listed = desk.listed("relaxed")
    for key in ("rep-1", "mgr-1", "far-1"):
        assert listed[key]["mobile"] == CONTACTS_MADE[key][2], key
        assert listed[key]["email"] == CONTACTS_MADE[key][3], key
    # The manager role still masks it on others' records, so it can't be sorted on.
    response = desk.api.get(CONTACTS, params={"sort": "mobile"}, headers=desk.as_("relaxed"))
    assert response.status_code == 400, response.text


# ---- writing ----------------------------------------------------------------------------------


def test_the_owner_writes_what_they_see_in_full(desk: Desk) -> None:
    body = {"name": "rep-2", "mobile": "13555556666", "email": "two@example.com"}
    created = made(desk.api.post(CONTACTS, body, headers=desk.as_("rep")))
    assert created["mobile"] == "13555556666"
    desk.ids["rep-2"] = created["id"]
    changed = made(desk.patch("rep", "rep-2", {"mobile": "13555557777"}), 200)
    assert changed["mobile"] == "13555557777"
    # The manager's own contact: their role spares them, and lets them update it.
    assert made(desk.patch("manager", "mgr-1", {"mobile": "13811110000"}), 200)["mobile"] == (
        "13811110000"
    )
    assert made(desk.patch("manager", "mgr-1", {"email": "b@example.com"}), 200)["email"] == (
        "b@example.com"
    )


@pytest.mark.parametrize("name", ["mobile", "email", "status"])
def test_others_may_not_write_what_the_owner_is_spared(desk: Desk, name: str) -> None:
    values = {"mobile": "13000000000", "email": "x@example.com", "status": "active"}
    before = desk.admin_view("rep-1")
    response = desk.patch("manager", "rep-1", {name: values[name]})
    assert response.status_code == 403, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(name, "forbidden")]
    assert desk.admin_view("rep-1") == before
    # The rest of the record is theirs to change (update: subordinates).
    assert made(desk.patch("manager", "rep-1", {"name": "renamed"}), 200)["mobile"] == (
        "139****4321"
    )


def test_creating_for_someone_else_may_not_set_what_only_the_owner_writes(desk: Desk) -> None:
    def count() -> int:
        return int(desk.api.get(CONTACTS, params={"count": "true"}).json()["count"])

    before = count()
    body = {"name": "for-rep", "owner": desk.users["rep"], "mobile": "13000000000"}
    response = desk.api.post(CONTACTS, body, headers=desk.as_("manager"))
    assert response.status_code == 403, response.text
    assert count() == before
    # Clearing it is writing it too.
    made(desk.api.post(CONTACTS, {**body, "mobile": None}, headers=desk.as_("manager")), 403)
    assert count() == before
    del body["mobile"]
    created = made(desk.api.post(CONTACTS, body, headers=desk.as_("manager")))
    assert created["owner"] == desk.users["rep"]
    # For themselves (the default owner) they may.
    mine = {"name": "mine", "mobile": "13000000001"}
    assert made(desk.api.post(CONTACTS, mine, headers=desk.as_("manager")))["mobile"] == (
        "13000000001"
    )


def test_my_permissions_say_what_the_callers_own_records_show(desk: Desk) -> None:
    response = desk.api.get(f"{V1}/me/permissions", headers=desk.as_("manager"))
    fields = made(response, 200)["entities"]["contact"]["fields"]
    assert fields["mobile"] == {
        "read": "masked",
        "filter": False,
        "create": False,
        "update": False,
        "own": {"read": "visible", "create": True, "update": True},
    }
    assert fields["email"]["read"] == "hidden"
    assert fields["email"]["own"] == {"read": "visible", "create": True, "update": True}
    assert "own" not in fields["name"]
    strict = desk.api.get(f"{V1}/me/permissions", headers=desk.as_("strict")).json()
    mobile = strict["entities"]["contact"]["fields"]["mobile"]
    # On their own records the auditor role masks it and the manager role doesn't: which
    # roles grant the record decide.
    assert mobile["read"] == "masked" and mobile["own"]["read"] == "varies"


# ---- role documents ---------------------------------------------------------------------------


def role_with(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "tester",
        "label": {"en": "Tester"},
        "entities": {"contact": {"actions": {"read": "all"}, "fields": fields}},
    }


def errors_of(response: httpx.Response) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


POINTER = "/entities/contact/fields/{}/except_owner"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": {"access": "read_only", "except_owner": True}}, ("name", "unused")),
        ({"mobile": {"access": "masked", "except_owner": "yes"}}, ("mobile", "type")),
        ({"mobile": {"access": "masked", "except_owner": None}}, ("mobile", "type")),
    ],
    ids=["read-only", "not-a-boolean", "null"],
)
def test_a_role_misusing_except_owner_is_refused_at_its_pointer(
    desk: Desk, fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    response = desk.api.post(ROLES, role_with(fields))
    name, code = expected
    assert errors_of(response) == {(POINTER.format(name), code)}
    assert desk.api.get(f"{ROLES}/tester").status_code == 404


def test_except_owner_false_is_the_rule_for_everyone(desk: Desk) -> None:
    made(desk.api.post(ROLES, role_with({"name": {"access": "read_only", "except_owner": False}})))
    masked = role_with({"mobile": {"access": "masked", "except_owner": False}})
    made(desk.api.put(f"{ROLES}/tester", masked), 200)
    token = desk.api.new_user("tester@example.com", roles=("tester",))
    tester = {"Authorization": f"Bearer {token}"}
    me = made(desk.api.get(f"{V1}/me", headers=tester), 200)["id"]
    body = {"name": "own", "mobile": "13812345678", "owner": me}
    record = made(desk.api.post(CONTACTS, body))
    shown = made(desk.api.get(f"{CONTACTS}/{record['id']}", headers=tester), 200)
    assert shown["mobile"] == "138****5678"
