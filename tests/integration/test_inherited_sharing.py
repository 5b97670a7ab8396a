"""Shares that reach a record's children, on SQLite and PostgreSQL: a lookup marked
`inherit_sharing` lets a share of the looked-up customer (with a user, a role, an org unit and
the units below) read or edit the customer's contacts too — in gets, lists, counts and updates —
one level down only, and only while the lookup carries the flag."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Api

V1 = "/api/v1"
RECORDS = f"{V1}/records"
ENTITIES = f"{V1}/meta/entities"

CUSTOMER = {
    "name": "customer",
    "label": {"en": "Customer"},
    "title_field": "name",
    "fields": [{"name": "name", "type": "text", "required": True}],
}
CONTACT = {
    "name": "contact",
    "label": {"en": "Contact"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "customer", "type": "lookup", "target": "customer", "inherit_sharing": True},
    ],
}
# The same lookup without the flag: a customer's shares don't reach its notes.
NOTE = {
    "name": "note",
    "label": {"en": "Note"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "customer", "type": "lookup", "target": "customer"},
    ],
}
# A grandchild: it inherits from the contact, which inherits from the customer.
CALL = {
    "name": "call",
    "label": {"en": "Call"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "contact", "type": "lookup", "target": "contact", "inherit_sharing": True},
    ],
}
ENTITY_NAMES = ("customer", "contact", "note", "call")
MEMBER = {
    "name": "member",
    "label": {"en": "Team member"},
    "entities": {
        name: {"actions": {"read": "own", "update": "own", "delete": "own", "share": "own"}}
        for name in ENTITY_NAMES
    },
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, body)
    assert response.status_code == 201, response.text
    return response.json()


class World:
    """An admin's customer with two contacts, a note and a call; a second customer with a
    contact; members in and out of the org tree (sales → east)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        for doc in (CUSTOMER, CONTACT, NOTE, CALL):
            api.make_entity(doc)
        created(api, f"{V1}/meta/roles", MEMBER)
        self.sales = created(api, f"{V1}/org-units", {"name": "sales"})["id"]
        self.east = created(api, f"{V1}/org-units", {"name": "east", "parent": self.sales})["id"]
        self.mate = api.new_user("mate@example.com", roles=("member",))
        self.mate_id = api.get(f"{V1}/me", headers=bearer(self.mate)).json()["id"]
        self.colleague = api.new_user("east@example.com", roles=("member",), org_unit=self.east)
        self.outsider = api.new_user("out@example.com", roles=("member",))
        self.customer = created(api, f"{RECORDS}/customer", {"name": "Acme"})["id"]
        self.other = created(api, f"{RECORDS}/customer", {"name": "Other"})["id"]
        self.contacts = [
            created(api, f"{RECORDS}/contact", {"name": n, "customer": self.customer})["id"]
            for n in ("Ann", "Bo")
        ]
        self.stranger = created(api, f"{RECORDS}/contact", {"name": "Cy", "customer": self.other})[
            "id"
        ]
        self.orphan = created(api, f"{RECORDS}/contact", {"name": "Di"})["id"]
        self.note = created(api, f"{RECORDS}/note", {"name": "n", "customer": self.customer})["id"]
        self.call = created(api, f"{RECORDS}/call", {"name": "c", "contact": self.contacts[0]})[
            "id"
        ]

    def share(self, entity: str, record: str, kind: str, who: str, access: str) -> str:
        body = {"principal_type": kind, "principal": who, "access": access}
        return created(self.api, f"{RECORDS}/{entity}/{record}/shares", body)["id"]

    def contact(self, record: str) -> str:
        return f"{RECORDS}/contact/{record}"

    def listed(self, token: str, entity: str = "contact") -> tuple[set[str], int]:
        response = self.api.get(f"{RECORDS}/{entity}?count=true", headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        return {r["id"] for r in body["data"]}, body["count"]


@pytest.fixture
def world(api: Api) -> World:
    return World(api)


def test_without_a_share_a_members_children_of_others_stay_invisible(world: World) -> None:
    api, mate = world.api, bearer(world.mate)
    assert world.listed(world.mate) == (set(), 0)
    for record in (*world.contacts, world.stranger, world.orphan):
        assert api.get(world.contact(record), headers=mate).status_code == 404
        assert api.patch(world.contact(record), {"name": "x"}, headers=mate).status_code == 404


def test_a_read_share_of_the_customer_lets_its_contacts_be_read_not_changed(
    world: World,
) -> None:
    api, mate = world.api, bearer(world.mate)
    world.share("customer", world.customer, "user", world.mate_id, "read")
    assert world.listed(world.mate) == (set(world.contacts), 2)
    for record in world.contacts:
        got = api.get(world.contact(record), headers=mate)
        assert got.status_code == 200, got.text
        assert got.json()["customer"] == world.customer
        refused = api.patch(world.contact(record), {"name": "changed"}, headers=mate)
        assert refused.status_code == 403, refused.text
    assert api.get(world.contact(world.contacts[0])).json()["name"] == "Ann"
    # Another customer's contact and one without a customer are still out of reach.
    assert api.get(world.contact(world.stranger), headers=mate).status_code == 404
    assert api.get(world.contact(world.orphan), headers=mate).status_code == 404
    # A filter and a search see no more than the share allows.
    found = api.get(f"{RECORDS}/contact?count=true&q=cy", headers=mate).json()
    assert (found["data"], found["count"]) == ([], 0)
    named = api.get(f'{RECORDS}/contact?count=true&filter=name == "Bo"', headers=mate).json()
    assert ([r["id"] for r in named["data"]], named["count"]) == ([world.contacts[1]], 1)


def test_an_edit_share_lets_the_contacts_be_updated_as_on_the_customer_itself(
    world: World,
) -> None:
    api, mate = world.api, bearer(world.mate)
    world.share("customer", world.customer, "user", world.mate_id, "edit")
    changed = api.patch(world.contact(world.contacts[0]), {"name": "Ann B."}, headers=mate)
    assert changed.status_code == 200, changed.text
    assert api.get(world.contact(world.contacts[0])).json()["name"] == "Ann B."
    assert api.patch(world.contact(world.stranger), {"name": "x"}, headers=mate).status_code == 404
    # An edit share reads and updates; it deletes neither the customer nor its contacts.
    assert api.delete(f"{RECORDS}/customer/{world.customer}", headers=mate).status_code == 403
    assert api.delete(world.contact(world.contacts[1]), headers=mate).status_code == 403
    assert api.get(world.contact(world.contacts[1])).status_code == 200
    reshare = {"principal_type": "role", "principal": "member", "access": "read"}
    refused = api.post(f"{world.contact(world.contacts[1])}/shares", reshare, headers=mate)
    assert refused.status_code == 403, refused.text
    assert api.get(f"{world.contact(world.contacts[1])}/shares").json() == {"data": []}


def test_record_actions_follow_the_inherited_access(world: World) -> None:
    api, mate = world.api, bearer(world.mate)
    rename = {
        "name": "rename",
        "label": {"en": "Rename"},
        "entity": "contact",
        "permission": "update",
        "steps": [{"type": "set_fields", "values": {"name": '"Renamed"'}}],
    }
    created(api, f"{V1}/meta/actions", rename)
    actions = f"{world.contact(world.contacts[0])}/actions"
    assert api.get(actions, headers=mate).status_code == 404
    world.share("customer", world.customer, "user", world.mate_id, "read")
    listed = api.get(actions, headers=mate)
    assert listed.status_code == 200, listed.text
    assert [(a["name"], a["available"]) for a in listed.json()["data"]] == [("rename", False)]
    assert api.post(f"{actions}/rename", {}, headers=mate).status_code == 403
    world.share("customer", world.customer, "user", world.mate_id, "edit")
    assert [a["available"] for a in api.get(actions, headers=mate).json()["data"]] == [True]
    ran = api.post(f"{actions}/rename", {}, headers=mate)
    assert ran.status_code == 200, ran.text
    assert api.get(world.contact(world.contacts[0])).json()["name"] == "Renamed"


def test_a_parents_shares_still_count_while_it_is_in_the_recycle_bin(world: World) -> None:
    world.share("customer", world.customer, "user", world.mate_id, "read")
    deleted = world.api.delete(f"{RECORDS}/customer/{world.customer}")
    assert deleted.status_code == 204, deleted.text
    assert world.listed(world.mate) == (set(world.contacts), 2)


def test_an_update_cannot_move_a_contact_out_of_the_shared_customer(world: World) -> None:
    api, mate = world.api, bearer(world.mate)
    world.share("customer", world.customer, "user", world.mate_id, "edit")
    moved = api.patch(world.contact(world.contacts[0]), {"customer": world.other}, headers=mate)
    assert moved.status_code == 403, moved.text
    assert api.get(world.contact(world.contacts[0])).json()["customer"] == world.customer


def test_a_role_share_reaches_the_contacts_of_everyone_holding_the_role(world: World) -> None:
    world.share("customer", world.customer, "role", "member", "read")
    for token in (world.mate, world.colleague, world.outsider):
        assert world.listed(token) == (set(world.contacts), 2)


def test_an_org_unit_share_reaches_the_contacts_for_the_units_below(world: World) -> None:
    api = world.api
    world.share("customer", world.customer, "org_unit", world.sales, "edit")
    assert world.listed(world.colleague) == (set(world.contacts), 2)  # east is below sales
    assert world.listed(world.mate) == (set(), 0)  # in no unit
    changed = api.patch(
        world.contact(world.contacts[1]), {"name": "Bo B."}, headers=bearer(world.colleague)
    )
    assert changed.status_code == 200, changed.text


def test_taking_the_share_back_takes_the_contacts_back(world: World) -> None:
    api, mate = world.api, bearer(world.mate)
    share = world.share("customer", world.customer, "user", world.mate_id, "edit")
    assert world.listed(world.mate)[1] == 2
    removed = api.delete(f"{RECORDS}/customer/{world.customer}/shares/{share}")
    assert removed.status_code == 204, removed.text
    assert world.listed(world.mate) == (set(), 0)
    assert api.get(world.contact(world.contacts[0]), headers=mate).status_code == 404


def test_a_lookup_without_the_flag_inherits_nothing(world: World) -> None:
    world.share("customer", world.customer, "user", world.mate_id, "edit")
    assert world.listed(world.mate, "note") == (set(), 0)
    note = f"{RECORDS}/note/{world.note}"
    assert world.api.get(note, headers=bearer(world.mate)).status_code == 404


def test_inheritance_is_one_level_deep(world: World) -> None:
    """A call inherits from its contact's own shares, not from the contact's customer's."""
    world.share("customer", world.customer, "user", world.mate_id, "read")
    assert world.listed(world.mate, "call") == (set(), 0)
    world.share("contact", world.contacts[0], "user", world.mate_id, "read")
    assert world.listed(world.mate, "call") == ({world.call}, 1)


def test_a_childs_own_shares_list_only_its_own(world: World) -> None:
    """Why a member sees a contact is on its customer's shares, not repeated on the contact."""
    world.share("customer", world.customer, "user", world.mate_id, "read")
    own = world.api.get(f"{world.contact(world.contacts[0])}/shares")
    assert own.json() == {"data": []}


def test_a_direct_share_of_a_child_still_counts_alongside_inherited_ones(world: World) -> None:
    world.share("customer", world.customer, "user", world.mate_id, "read")
    world.share("contact", world.stranger, "user", world.mate_id, "read")
    assert world.listed(world.mate) == ({*world.contacts, world.stranger}, 3)


def test_turning_the_flag_off_or_removing_the_lookup_ends_the_inheritance(world: World) -> None:
    api, mate = world.api, bearer(world.mate)
    world.share("customer", world.customer, "user", world.mate_id, "read")
    field = f"{ENTITIES}/contact/fields/customer"
    name, lookup = CONTACT["fields"]
    without = {**CONTACT, "fields": [name, {**lookup, "inherit_sharing": False}]}
    dry = api.put(f"{ENTITIES}/contact?dry_run=true", without)
    assert dry.status_code == 200, dry.text
    assert dry.json()["plan"]["operations"] == []
    off = api.patch(field, {"inherit_sharing": False})
    assert off.status_code == 200, off.text
    assert world.listed(world.mate) == (set(), 0)
    on = api.patch(field, {"inherit_sharing": True})
    assert on.status_code == 200, on.text
    assert world.listed(world.mate) == (set(world.contacts), 2)
    assert api.delete(field).status_code in (200, 204)
    assert world.listed(world.mate) == (set(), 0)
    assert api.get(world.contact(world.contacts[0]), headers=mate).status_code == 404


def test_the_flag_on_a_field_that_is_not_a_lookup_is_refused_at_its_pointer(api: Api) -> None:
    api.make_entity(CUSTOMER)
    doc = {**CONTACT, "fields": [{"name": "name", "type": "text", "inherit_sharing": True}]}
    refused = api.post(ENTITIES, doc)
    assert refused.status_code == 422, refused.text
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [
        ("/fields/0/inherit_sharing", "not_allowed")
    ]
    assert "only lookup fields" in refused.json()["errors"][0]["message"]
    assert api.get(f"{ENTITIES}/contact").status_code == 404
    api.make_entity(NOTE)
    added = api.post(
        f"{ENTITIES}/note/fields", {"name": "due", "type": "date", "inherit_sharing": True}
    )
    assert added.status_code == 422, added.text
    assert [(e["field"], e["code"]) for e in added.json()["errors"]] == [
        ("/fields/2/inherit_sharing", "not_allowed")
    ]
    patched = api.patch(f"{ENTITIES}/note/fields/name", {"inherit_sharing": True})
    assert patched.status_code == 422, patched.text
    assert [(e["field"], e["code"]) for e in patched.json()["errors"]] == [
        ("/fields/0/inherit_sharing", "not_allowed")
    ]
    not_boolean = api.patch(f"{ENTITIES}/note/fields/customer", {"inherit_sharing": "yes"})
    assert not_boolean.status_code == 422, not_boolean.text
    assert [(e["field"], e["code"]) for e in not_boolean.json()["errors"]] == [
        ("/fields/1/inherit_sharing", "type")
    ]
    assert "inherit_sharing" not in str(api.get(f"{ENTITIES}/note").json())
