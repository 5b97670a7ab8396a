"""The world the approval tests run in (no tests here): a `deal` entity, roles, an org unit with
a head, a reporting line, and helpers to design processes and act as each person over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import Api
from passwords import password_hash
from sqlalchemy import select

from metacrm.platform.db import reading, writing
from metacrm.platform.systables import events, notifications
from metacrm.platform.users import create_token, create_user

V1 = "/api/v1"
PROCESSES = f"{V1}/meta/approval-processes"
RECORDS = f"{V1}/records"
APPROVALS = f"{V1}/approvals"

DEAL = {
    "name": "deal",
    "label": {"en": "Deal"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "discount", "type": "integer", "min": 0, "max": 100},
        {
            "name": "stage",
            "type": "picklist",
            "default": "open",
            "options": [{"value": "open"}, {"value": "review"}, {"value": "won"}],
        },
        {"name": "reviewer", "type": "user"},
        {"name": "approved", "type": "boolean", "default": False},
        {"name": "note", "type": "text"},
    ],
}
ROLES = [
    {
        "name": "rep",
        "label": {"en": "Rep"},
        "entities": {
            "deal": {"actions": {"read": "own", "create": "own", "update": "own", "delete": "own"}}
        },
    },
    {
        "name": "director",
        "label": {"en": "Director"},
        "entities": {"deal": {"actions": {"read": "all", "update": "all"}}},
    },
    {
        "name": "lead",
        "label": {"en": "Lead"},
        "entities": {"deal": {"actions": {"read": "all", "update": "all"}}},
    },
    {"name": "nothing", "label": {"en": "Nothing"}},
]
# key -> (roles, manager key, in the sales unit)
PEOPLE: dict[str, tuple[tuple[str, ...], str | None, bool]] = {
    "boss": (("lead",), None, True),
    "mgr": (("lead",), "boss", True),
    "rep": (("rep",), "mgr", True),
    "loner": (("rep",), None, False),
    "dir1": (("director",), None, False),
    "dir2": (("director",), None, False),
    "dir3": (("director",), None, False),
    "head": (("lead",), None, True),
    "outsider": (("nothing",), None, False),
}


@dataclass
class World:
    api: Api
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who != "admin" else {}

    def get(self, who: str, path: str, **kw: Any) -> httpx.Response:
        return self.api.get(path, headers=self.headers(who), **kw)

    def post(self, who: str, path: str, body: Any = None) -> httpx.Response:
        return self.api.post(path, body, headers=self.headers(who))

    def patch(self, who: str, path: str, body: Any) -> httpx.Response:
        return self.api.patch(path, body, headers=self.headers(who))

    def delete(self, who: str, path: str) -> httpx.Response:
        return self.api.delete(path, headers=self.headers(who))

    def process(self, doc: dict[str, Any]) -> dict[str, Any]:
        response = self.api.post(PROCESSES, doc)
        assert response.status_code == 201, response.text
        return response.json()

    def deal(self, who: str = "rep", **values: Any) -> dict[str, Any]:
        response = self.post(who, f"{RECORDS}/deal", {"name": "Deal", **values})
        assert response.status_code == 201, response.text
        return response.json()

    def submit(
        self, who: str, deal_id: str, process: str, expect: int = 201, **extra: Any
    ) -> dict[str, Any]:
        response = self.post(
            who, f"{RECORDS}/deal/{deal_id}/approvals", {"process": process, **extra}
        )
        assert response.status_code == expect, response.text
        return response.json()

    def answer(
        self, who: str, approval_id: str, verb: str = "approve", expect: int = 200, **body: Any
    ) -> dict[str, Any]:
        response = self.post(who, f"{APPROVALS}/{approval_id}/{verb}", body or None)
        assert response.status_code == expect, response.text
        return response.json()

    def record(self, deal_id: str) -> dict[str, Any]:
        response = self.api.get(f"{RECORDS}/deal/{deal_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def holders(self, approval: dict[str, Any], status: str = "pending") -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {
            by_id.get(t["approver"], t["approver"])
            for t in approval["tasks"]
            if t["status"] == status
        }

    def notifications(self, who: str, kind: str) -> list[dict[str, Any]]:
        with reading(self.api.engine) as conn:
            rows = conn.execute(
                select(notifications).where(
                    notifications.c.user_id == self.ids[who], notifications.c.kind == kind
                )
            )
            return [dict(r._mapping) for r in rows]

    def events(self, prefix: str = "approval.") -> list[dict[str, Any]]:
        with reading(self.api.engine) as conn:
            rows = conn.execute(
                select(events).where(events.c.type.startswith(prefix)).order_by(events.c.id)
            )
            return [dict(r._mapping) for r in rows]


def step(name: str, approvers: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {"name": name, "label": {"en": name.title()}, "approvers": approvers, **options}


def process_doc(name: str, steps: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": {"en": name.title()},
        "entity": "deal",
        "steps": steps,
        **options,
    }


MANAGER = {"type": "manager", "levels": 1}
DIRECTORS = {"type": "role", "role": "director"}


def build_world(api: Api) -> World:
    world = World(api)
    api.make_entity(DEAL)
    for role in ROLES:
        response = api.post(f"{V1}/meta/roles", role)
        assert response.status_code == 201, response.text
    with writing(api.engine) as conn:
        for key, (roles, manager, _) in PEOPLE.items():
            user = create_user(
                conn,
                email=f"{key}@example.com",
                password_hash=password_hash("a-long-password"),
                roles=roles,
                manager=world.ids[manager] if manager else None,
            )
            world.ids[key] = user.id
            world.tokens[key] = create_token(conn, user)
    # Units after people: the unit's head must exist; then people join it.
    unit = api.post(f"{V1}/org-units", {"name": "sales", "head": world.ids["head"]})
    assert unit.status_code == 201, unit.text
    for key, (_, _, in_sales) in PEOPLE.items():
        if in_sales:
            moved = api.patch(f"{V1}/users/{world.ids[key]}", {"org_unit": unit.json()["id"]})
            assert moved.status_code == 200, moved.text
    me = api.get(f"{V1}/me").json()
    world.ids["admin"] = me["id"]
    return world


@pytest.fixture
def world(api: Api) -> World:
    return build_world(api)
