"""The record service replaying past work (what `metacrm demo` does): a caller's service at
another moment writes at that moment with the caller's permissions, and a writer that doesn't
look at the result can skip reading it back — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import ACCOUNT, Api
from sqlalchemy import Connection

from metacrm.platform.errors import NotFound
from metacrm.platform.org import create_unit
from metacrm.platform.users import find_user
from metacrm.runtime.records import RecordService

MARCH = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
APRIL = datetime(2025, 4, 7, 14, 0, tzinfo=UTC)
ROLES = "/api/v1/meta/roles"


@pytest.fixture
def world(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    for name, scope in (("rep", "own"), ("lead", "subordinates")):
        actions = {"read": scope, "create": "own", "update": scope}
        role = {"name": name, "label": name, "entities": {"account": {"actions": actions}}}
        assert api.post(ROLES, role).status_code == 201
    with api.services.writing() as conn:
        unit = create_unit(conn, name="north").id
    api.new_user("boss@example.com", roles=("lead",), org_unit=unit)
    with api.services.writing() as conn:
        boss = find_user(conn, "boss@example.com").id
    api.new_user("ann@example.com", roles=("rep",), org_unit=unit, manager=boss)
    api.new_user("bob@example.com", roles=("rep",), org_unit=unit, manager=boss)
    return api


def service(api: Api, conn: Connection, email: str) -> RecordService:
    return RecordService(api.services.context(conn, find_user(conn, email)))


def test_a_service_at_another_moment_writes_then_with_the_callers_rights(world: Api) -> None:
    with world.services.writing() as conn:
        ann = service(world, conn, "ann@example.com")
        made = ann.at(MARCH).create("account", {"name": "Acme"})
        ann.at(APRIL).update("account", made["id"], {"industry": "energy"})
        bob = service(world, conn, "bob@example.com")
        # Bob may not read Ann's account: at any moment it is not there for him.
        with pytest.raises(NotFound):
            bob.at(APRIL).update("account", made["id"], {"name": "Mine now"})
        boss = service(world, conn, "boss@example.com")
        # The manager's subordinates are resolved once for every moment of his service.
        later = boss.at(APRIL)
        assert later.permissions.principal is boss.permissions.principal
        assert later.get("account", made["id"])["name"] == "Acme"
    record = world.get(f"/api/v1/records/account/{made['id']}").json()
    assert (record["created_at"], record["updated_at"]) == (
        "2025-03-03T09:30:00Z",
        "2025-04-07T14:00:00Z",
    )
    assert record["name"] == "Acme" and record["version"] == 2
    history = world.get(f"/api/v1/records/account/{made['id']}/history").json()["data"]
    assert [(h["action"], h["changed_at"]) for h in history] == [
        ("update", "2025-04-07T14:00:00Z"),
        ("create", "2025-03-03T09:30:00Z"),
    ]


def test_a_write_without_read_back_returns_its_id_and_version_and_writes_the_same(
    world: Api,
) -> None:
    with world.services.writing() as conn:
        ann = service(world, conn, "ann@example.com")
        made = ann.create("account", {"name": "Acme"}, read_back=False)
        assert set(made) == {"id", "version"} and made["version"] == 1
        changed = ann.update(
            "account", made["id"], {"website": "https://acme.example"}, read_back=False
        )
        assert changed == {"id": made["id"], "version": 2}
        # A change that changes nothing writes nothing: the version stays.
        same = ann.update("account", made["id"], {"name": "Acme"}, read_back=False)
        assert same == {"id": made["id"], "version": 2}
        assert ann.get("account", made["id"])["website"] == "https://acme.example"
    history = world.get(f"/api/v1/records/account/{made['id']}/history").json()["data"]
    assert [h["version"] for h in history] == [2, 1]
