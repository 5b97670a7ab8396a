"""The org world of the permission leak matrix (test_permissions_leak.py), as plain data.

Everything the test later predicts from is declared here: the unit tree, the people (unit,
manager, roles), the roles (actions with scopes, record rules with a Python twin of each
condition, field permissions), the records (owner, values, deleted or not), the record shares
and the entities' sharing rules. `build_world` puts it into a fresh metacrm as an admin would
and returns the ids and tokens the product handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conftest import Api
from passwords import password_hash

from metacrm.platform.db import writing
from metacrm.platform.org import create_unit
from metacrm.platform.users import UserChange, change_user, create_token, create_user

RECORDS = "/api/v1/records"
Values = Mapping[str, Any]

# ---- the org --------------------------------------------------------------------------------

# unit -> parent unit
UNITS: dict[str, str | None] = {
    "company": None,
    "sales": "company",
    "north": "sales",
    "south": "sales",
    "service": "company",
}


@dataclass(frozen=True)
class Person:
    key: str
    unit: str | None = None
    manager: str | None = None
    roles: tuple[str, ...] = ()
    admin: bool = False
    frozen: bool = False

    @property
    def email(self) -> str:
        return f"{self.key}@example.com"


ADMIN = "admin"
PEOPLE: tuple[Person, ...] = (
    Person(ADMIN, admin=True),  # the admin start_api creates (admin@example.com)
    Person("director", "sales", roles=("lead",)),
    Person("manager", "north", "director", ("lead",)),
    Person("rep", "north", "manager", ("rep",)),
    Person("junior", "north", "rep", ("rep",)),
    Person("unit_user", "north", roles=("unit_reader",)),
    Person("sales_head", "sales", roles=("tree_reader",)),
    Person("dual", "sales", roles=("own_full", "tree_reader")),
    Person("south_rep", "south", roles=("rep",)),
    Person("widen", "south", roles=("widen_reader",)),
    Person("auditor", "service", roles=("all_reader",)),
    Person("narrow", "service", roles=("narrow_reader",)),
    Person("opp_only", "service", roles=("opp_only_reader",)),
    Person("nobody", "service"),
    Person("frozen", "north", roles=("rep",), frozen=True),
    # Fields that spare the record's owner: keeper alone, and with a role that masks the same
    # fields for everyone (roles in name order, as the product lists them).
    Person("keeper", "south", roles=("keeper",)),
    Person("keeper_plus", "south", roles=("all_reader", "keeper")),
)
PERSON = {p.key: p for p in PEOPLE}

# ---- the entities -----------------------------------------------------------------------------

# entity -> {custom field: type}
FIELD_TYPES: dict[str, dict[str, str]] = {
    "account": {
        "name": "text",
        "industry": "picklist",
        "phone": "phone",
        "secret": "text",
        "region": "text",
    },
    "opportunity": {"name": "text", "amount": "decimal", "account": "lookup", "stage": "picklist"},
}
SEARCHABLE_TYPES = frozenset({"text", "textarea", "email", "phone", "autonumber"})


@dataclass(frozen=True)
class SharingRule:
    name: str
    condition: str
    holds: Callable[[Values], bool]  # the condition in Python, for the test's own predictions
    share_with: tuple[str, str]  # ("user", person key) | ("role", name) | ("org_unit", unit)
    access: str = "read"

    def doc(self) -> dict[str, Any]:
        kind, who = self.share_with
        target = PERSON[who].email if kind == "user" else who
        return {
            "name": self.name,
            "condition": self.condition,
            "share_with": {kind: target},
            "access": self.access,
        }


SHARING_RULES: dict[str, tuple[SharingRule, ...]] = {
    "account": (
        SharingRule(
            "energy_south",
            'industry == "energy"',
            lambda v: v.get("industry") == "energy",
            ("org_unit", "south"),
        ),
    ),
    "opportunity": (
        SharingRule(
            "lost_to_unit_readers",
            'stage == "lost"',
            lambda v: v.get("stage") == "lost",
            ("role", "unit_reader"),
        ),
        SharingRule(
            "big_to_rep", "amount > 9000", lambda v: (v.get("amount") or 0) > 9000, ("user", "rep")
        ),
    ),
}


def entity_docs() -> list[dict[str, Any]]:
    account = {
        "name": "account",
        "label": {"en": "Account"},
        "title_field": "name",
        "fields": [
            {"name": "name", "type": "text", "required": True, "max_length": 200},
            {
                "name": "industry",
                "type": "picklist",
                "options": [{"value": "retail"}, {"value": "energy"}, {"value": "finance"}],
            },
            {"name": "phone", "type": "phone"},
            {"name": "secret", "type": "text"},
            {"name": "region", "type": "text"},
        ],
    }
    opportunity = {
        "name": "opportunity",
        "label": {"en": "Opportunity"},
        "title_field": "name",
        "fields": [
            {"name": "name", "type": "text", "required": True, "max_length": 200},
            {"name": "amount", "type": "decimal", "precision": 14, "scale": 2, "min": 0},
            {"name": "account", "type": "lookup", "target": "account"},
            {
                "name": "stage",
                "type": "picklist",
                "options": [{"value": s} for s in ("qualify", "proposal", "won", "lost")],
            },
        ],
    }
    for doc in (account, opportunity):
        doc["sharing_rules"] = [r.doc() for r in SHARING_RULES[str(doc["name"])]]
    return [account, opportunity]


# ---- the roles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str
    effect: str  # "narrow" | "widen"
    holds: Callable[[Values], bool]  # the condition in Python
    actions: tuple[str, ...] | None = None  # None: every action

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions


@dataclass(frozen=True)
class Grant:
    """One role's permissions on one entity."""

    actions: dict[str, str]
    rules: tuple[Rule, ...] = ()
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"actions": self.actions}
        if self.rules:
            doc["record_rules"] = [
                {"name": r.name, "condition": r.condition, "effect": r.effect}
                | ({"actions": list(r.actions)} if r.actions else {})
                for r in self.rules
            ]
        if self.fields:
            doc["fields"] = self.fields
        return doc


HIDDEN = {"access": "hidden"}
MASKED = {"access": "masked"}
# The record's owner sees these in full; every other reader as if the rule had no exception.
HIDDEN_BUT_OWNER = {"access": "hidden", "except_owner": True}
MASKED_BUT_OWNER = {"access": "masked", "except_owner": True}
# A custom mask: the last two characters kept, the rest as "#".
CUSTOM_MASK = {"access": "masked", "mask": {"keep_start": 0, "keep_end": 2, "char": "#"}}

ROLES: dict[str, dict[str, Grant]] = {
    "rep": {
        "account": Grant(
            {a: "own" for a in ("read", "create", "update", "delete", "export")},
            fields={"secret": HIDDEN},
        ),
        "opportunity": Grant({"read": "own", "create": "own", "update": "own"}),
    },
    "lead": {
        "account": Grant(
            {a: "subordinates" for a in ("read", "update", "transfer", "export")},
        ),
        "opportunity": Grant({"read": "subordinates", "export": "subordinates"}),
    },
    "unit_reader": {
        "account": Grant({"read": "org_unit", "export": "org_unit"}, fields={"phone": MASKED}),
        "opportunity": Grant({"read": "org_unit"}),
    },
    "tree_reader": {
        "account": Grant(
            {"read": "org_unit_tree", "export": "org_unit_tree"},
            fields={"phone": MASKED, "secret": HIDDEN},
        ),
        "opportunity": Grant({"read": "org_unit_tree"}, fields={"name": MASKED}),
    },
    "own_full": {
        "account": Grant({a: "own" for a in ("read", "create", "update", "export")}),
        "opportunity": Grant({"read": "own"}),
    },
    "all_reader": {
        "account": Grant(
            {"read": "all", "export": "all"}, fields={"secret": HIDDEN, "phone": CUSTOM_MASK}
        ),
        "opportunity": Grant(
            {"read": "all", "export": "all"}, fields={"amount": {"access": "read_only"}}
        ),
    },
    "narrow_reader": {
        "account": Grant(
            {"read": "all", "update": "all", "export": "all"},
            rules=(
                Rule(
                    "retail", 'industry == "retail"', "narrow", lambda v: v["industry"] == "retail"
                ),
            ),
        ),
        "opportunity": Grant(
            {"read": "all"},
            rules=(
                Rule("won", 'stage == "won"', "narrow", lambda v: v["stage"] == "won", ("read",)),
            ),
        ),
    },
    "widen_reader": {
        "account": Grant(
            {"read": "own", "export": "own"},
            rules=(
                Rule(
                    "finance",
                    'industry == "finance"',
                    "widen",
                    lambda v: v["industry"] == "finance",
                    ("read",),
                ),
            ),
        ),
        "opportunity": Grant(
            {"read": "own"},
            rules=(Rule("big", "amount > 5000", "widen", lambda v: (v["amount"] or 0) > 5000),),
        ),
    },
    "opp_only_reader": {"opportunity": Grant({"read": "all"})},
    "keeper": {
        "account": Grant(
            {"read": "org_unit", "export": "org_unit"},
            fields={"phone": MASKED_BUT_OWNER, "secret": HIDDEN_BUT_OWNER},
        ),
        "opportunity": Grant({"read": "org_unit"}, fields={"name": MASKED_BUT_OWNER}),
    },
}


def role_docs() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "label": {"en": name},
            "entities": {entity: grant.doc() for entity, grant in grants.items()},
        }
        for name, grants in ROLES.items()
    ]


# ---- the records ------------------------------------------------------------------------------


@dataclass
class Rec:
    entity: str
    key: str  # a readable name, also the record's `name`
    owner: str  # person key
    values: dict[str, Any]  # custom fields; an opportunity's `account` holds the account's key
    deleted: bool = False
    id: str = ""


OWNERS = tuple(p.key for p in PEOPLE if p.key not in ("opp_only", "nobody"))
INDUSTRIES = ("retail", "energy", "finance", None)
STAGES = ("qualify", "won", "lost", "proposal")


def make_records() -> list[Rec]:
    """A few accounts and opportunities per owner, some deleted, values cycling so that every
    rule and sharing rule selects some records of several owners."""
    accounts: list[Rec] = []
    for i, owner in enumerate(OWNERS):
        for j in range(3 if i % 3 == 0 else 2):
            n = 2 * i + j
            accounts.append(
                Rec(
                    "account",
                    f"{owner}-acct-{j}",
                    owner,
                    {
                        "industry": INDUSTRIES[n % 4],
                        "phone": "12345" if n == 5 else f"139{i:04d}{j:04d}",
                        "secret": f"s3cr3t-{owner}-{j}",
                        "region": ("east", "west", None)[n % 3],
                    },
                    deleted=j == 2,
                )
            )
    opportunities: list[Rec] = []
    for i, owner in enumerate(OWNERS):
        for j in range(3 if i % 4 == 1 else 2):
            n = 2 * i + j
            # j == 0: an account of someone else (the next owner's); else one of the owner's own
            # (for j == 2 the deleted one). Every fifth has no account at all.
            other = accounts[(3 * i + 2) % len(accounts)]
            own = [a for a in accounts if a.owner == owner]
            account = None if n % 5 == 4 else (other if j == 0 else own[min(j, len(own) - 1)])
            opportunities.append(
                Rec(
                    "opportunity",
                    f"{owner}-opp-{j}",
                    owner,
                    {
                        "amount": 1000 * i + 500 * j,
                        "stage": STAGES[n % 4],
                        "account": account.key if account else None,
                    },
                    deleted=j == 2,
                )
            )
    return accounts + opportunities


@dataclass(frozen=True)
class Share:
    record: str  # record key
    principal_type: str  # user | role | org_unit
    principal: str  # person key | role name | unit name
    access: str = "read"


SHARES: tuple[Share, ...] = (
    Share("auditor-acct-0", "user", "rep"),
    Share("admin-acct-1", "role", "widen_reader", "edit"),
    Share("narrow-acct-0", "org_unit", "sales"),  # reaches north and south too
    Share("admin-acct-2", "user", "rep"),  # a deleted record: history only
    Share("admin-opp-0", "user", "unit_user"),
    Share("auditor-opp-1", "org_unit", "north", "edit"),
)


# ---- building it --------------------------------------------------------------------------------


@dataclass
class World:
    api: Api
    records: list[Rec]
    person_ids: dict[str, str]
    tokens: dict[str, str]
    unit_ids: dict[str, str]
    # What the admin sees (the truth the test transforms into each person's expectation); a
    # test that writes clears it.
    cache: dict[Any, Any] = field(default_factory=dict)

    def by_key(self, key: str) -> Rec:
        return next(r for r in self.records if r.key == key)

    def by_id(self, record_id: str) -> Rec:
        return next(r for r in self.records if r.id == record_id)

    def of(self, entity: str) -> list[Rec]:
        return [r for r in self.records if r.entity == entity]

    def token(self, who: str) -> str:
        return self.tokens[who]


def _created(api: Api, path: str, body: Any) -> dict[str, Any]:
    response = api.post(path, body)
    assert response.status_code == 201, response.text
    return response.json()


def build_world(api: Api) -> World:
    unit_ids: dict[str, str] = {}
    person_ids: dict[str, str] = {}
    tokens = {ADMIN: api.token}
    with writing(api.engine) as conn:
        for name, parent in UNITS.items():
            unit_ids[name] = create_unit(conn, name=name, parent=unit_ids.get(parent or "")).id
    for doc in entity_docs():
        api.make_entity(doc)
    for doc in role_docs():
        _created(api, "/api/v1/meta/roles", doc)
    with writing(api.engine) as conn:
        for p in PEOPLE:
            if p.admin:
                person_ids[p.key] = api.get("/api/v1/me").json()["id"]
                continue
            user = create_user(
                conn,
                email=p.email,
                password_hash=password_hash("a-long-password"),
                roles=p.roles,
                org_unit=unit_ids[p.unit] if p.unit else None,
                manager=person_ids[p.manager] if p.manager else None,
            )
            person_ids[p.key] = user.id
            tokens[p.key] = create_token(conn, user)

    records = make_records()
    keyed = {r.key: r for r in records}
    for rec in records:
        body = {"name": rec.key, "owner": person_ids[rec.owner], **rec.values}
        if rec.entity == "opportunity" and rec.values["account"]:
            body["account"] = keyed[rec.values["account"]].id
        rec.id = _created(api, f"{RECORDS}/{rec.entity}", body)["id"]
    for share in SHARES:
        rec = keyed[share.record]
        principal = {"user": person_ids, "role": {}, "org_unit": unit_ids}[share.principal_type]
        body = {
            "principal_type": share.principal_type,
            "principal": principal.get(share.principal, share.principal),
            "access": share.access,
        }
        _created(api, f"{RECORDS}/{rec.entity}/{rec.id}/shares", body)
    for rec in records:
        if rec.deleted:
            response = api.delete(f"{RECORDS}/{rec.entity}/{rec.id}")
            assert response.status_code == 204, response.text
    with writing(api.engine) as conn:
        for p in PEOPLE:
            if p.frozen:
                change_user(conn, person_ids[p.key], UserChange(is_active=False))
    return World(api, records, person_ids, tokens, unit_ids)
