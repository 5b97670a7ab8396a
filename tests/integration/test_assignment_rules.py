"""Assignment rules through the API and the record service: the first rule that holds gives a
new record to the next user of its queue, in turn or by load; inactive users are skipped, a queue
with nobody left falls through, an owner the client sends is kept, the value is in the record's
history; and two creates at once never take the same turn (PostgreSQL holds them at a barrier
just before the assignment; SQLite serialises writers)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Api
from sqlalchemy import inspect, select, text

from metacrm.metadata.model import EntityDef
from metacrm.platform.db import is_sqlite, reading, writing
from metacrm.platform.install import install
from metacrm.platform.systables import assignment_turns
from metacrm.platform.users import get_user
from metacrm.runtime.context import NoHook, Records
from metacrm.runtime.startup import build_registry

V1 = "/api/v1"
TICKET = {
    "name": "ticket",
    "label": {"en": "Ticket"},
    "title_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "required": True},
        {
            "name": "priority",
            "type": "picklist",
            "default": "P3",
            "options": [{"value": "P1"}, {"value": "P2"}, {"value": "P3"}],
        },
        {
            "name": "type",
            "type": "picklist",
            "options": [{"value": "incident"}, {"value": "question"}],
        },
        {
            "name": "status",
            "type": "picklist",
            "default": "new",
            "options": [{"value": "new"}, {"value": "closed"}],
        },
        {"name": "agent", "type": "user"},
    ],
}
AGENT = {
    "name": "agent",
    "label": {"en": "Service agent"},
    "entities": {"ticket": {"actions": {"read": "all", "create": "own", "update": "all"}}},
}
# Takes calls and opens tickets, sees only their own, and can't give a ticket away.
DESK = {
    "name": "desk",
    "label": {"en": "Service desk"},
    "entities": {"ticket": {"actions": {"read": "own", "create": "own", "update": "own"}}},
}


@dataclass
class Desk:
    api: Api
    users: dict[str, str]  # name → id
    tokens: dict[str, str]  # name → token

    def create(self, who: str = "desk", **values: Any) -> Any:
        record = {"subject": "Printer on fire", **values}
        return self.api.post(f"{V1}/records/ticket", record, headers=self.auth(who))

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def owner_of(self, record_id: str, field: str = "owner") -> str:
        found = self.api.get(f"{V1}/records/ticket/{record_id}")
        assert found.status_code == 200, found.text
        return str(found.json()[field])

    def name_of(self, user_id: str) -> str:
        return next(name for name, known in self.users.items() if known == user_id)

    def owners(self, count: int, **values: Any) -> list[str]:
        """Who each of `count` new tickets (opened by the desk) went to, by user name."""
        found = []
        for _ in range(count):
            response = self.create(**values)
            assert response.status_code == 201, response.text
            found.append(self.name_of(self.owner_of(response.json()["id"])))
        return found

    def rule(self, document: dict[str, Any], status: int = 201) -> Any:
        response = self.api.post(f"{V1}/meta/assignment-rules", document)
        assert response.status_code == status, response.text
        return response.json()

    def freeze(self, who: str) -> None:
        response = self.api.patch(f"{V1}/users/{self.users[who]}", {"is_active": False})
        assert response.status_code == 200, response.text


def make_desk(api: Api) -> Desk:
    api.make_entity(TICKET)
    for role in (AGENT, DESK):
        assert api.post(f"{V1}/meta/roles", role).status_code == 201
    users, tokens = {}, {}
    for name, role in (("ann", "agent"), ("bob", "agent"), ("cyd", "agent"), ("desk", "desk")):
        tokens[name] = api.new_user(f"{name}@example.com", roles=(role,))
        me = api.get(f"{V1}/me", headers={"Authorization": f"Bearer {tokens[name]}"})
        users[name] = me.json()["id"]
    return Desk(api, users, tokens)


@pytest.fixture
def desk(api: Api) -> Desk:
    return make_desk(api)


def tickets_rule(desk: Desk, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "tickets",
        "label": "Ticket queues",
        "entity": "ticket",
        "rules": [
            {
                "condition": 'priority == "P1" and type == "incident"',
                "users": [desk.users["ann"], desk.users["bob"]],
            },
            {"condition": 'priority != "P3"', "role": "agent"},
        ],
    }
    document.update(changes)
    return document


def test_new_records_go_in_turn_to_the_queue_of_the_first_rule_that_holds(desk: Desk) -> None:
    desk.rule(tickets_rule(desk))
    urgent = {"priority": "P1", "type": "incident"}
    assert desk.owners(5, **urgent) == ["ann", "bob", "ann", "bob", "ann"]
    # The second rule's queue is the role's holders, oldest account first, with its own turn.
    assert desk.owners(4, priority="P2") == ["ann", "bob", "cyd", "ann"]
    assert desk.owners(1, **urgent) == ["bob"]
    # No rule holds and there is no fallback: the record stays with its creator.
    assert desk.owners(1, priority="P3") == ["desk"]


def test_the_assignment_is_in_the_history_and_the_event_of_the_create(desk: Desk) -> None:
    desk.rule(tickets_rule(desk))
    response = desk.create(priority="P2")
    # The desk may create a ticket for itself only, yet the rule gives it away: the answer is
    # what a writer who may no longer read the record gets.
    assert response.status_code == 201, response.text
    record_id = response.json()["id"]
    assert set(response.json()) == {"id", "version"}
    history = desk.api.get(f"{V1}/records/ticket/{record_id}/history").json()["data"]
    assert [h["action"] for h in history] == ["create"]
    assert history[0]["changes"]["owner"] == {"old": None, "new": desk.users["ann"]}
    assert history[0]["changed_by"] == desk.users["desk"]
    with reading(desk.api.engine) as conn:
        payload = conn.execute(
            text("SELECT payload FROM mc_events WHERE type = 'record.created'")
        ).scalar_one()
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload["record"]["owner"] == desk.users["ann"]
    assert payload["changes"]["owner"] == [None, desk.users["ann"]]
    inbox = desk.api.get(f"{V1}/notifications", headers=desk.auth("ann")).json()["data"]
    assert [(n["kind"], n["record_id"]) for n in inbox] == [("record.assigned", record_id)]


def test_inactive_users_are_skipped_and_a_queue_with_nobody_left_falls_through(
    desk: Desk,
) -> None:
    desk.rule(tickets_rule(desk, fallback={"users": [desk.users["cyd"]]}))
    urgent = {"priority": "P1", "type": "incident"}
    assert desk.owners(1, **urgent) == ["ann"]
    desk.freeze("bob")
    assert desk.owners(2, **urgent) == ["ann", "ann"]
    desk.freeze("ann")
    # Nobody is left in the first queue: the next rule that holds takes the record.
    assert desk.owners(2, **urgent) == ["cyd", "cyd"]
    # The fallback takes what no rule assigns.
    assert desk.owners(1, priority="P3") == ["cyd"]
    desk.freeze("cyd")
    assert desk.owners(1, **urgent) == ["desk"]


def test_an_owner_the_client_sends_is_kept_and_takes_no_turn(desk: Desk) -> None:
    desk.rule(tickets_rule(desk))
    urgent = {"priority": "P1", "type": "incident"}
    assert desk.owners(1, **urgent) == ["ann"]
    sent = desk.create("cyd", owner=desk.users["cyd"], **urgent)
    assert sent.status_code == 201, sent.text
    assert desk.owner_of(sent.json()["id"]) == desk.users["cyd"]
    admin = desk.api.post(
        f"{V1}/records/ticket", {"subject": "x", "owner": desk.users["ann"], **urgent}
    )
    assert desk.owner_of(admin.json()["id"]) == desk.users["ann"]
    # The queue goes on where it was.
    assert desk.owners(1, **urgent) == ["bob"]


def test_a_rule_reading_a_deleted_field_no_longer_holds_and_writes_go_on(desk: Desk) -> None:
    agents = [desk.users["bob"]]
    desk.rule(
        tickets_rule(
            desk,
            rules=[
                {"condition": 'type == "incident"', "users": [desk.users["ann"]]},
                {"users": agents, "method": "least_loaded", "open_condition": "type is null"},
            ],
        )
    )
    assert desk.owners(1, type="incident") == ["ann"]
    assert desk.api.delete(f"{V1}/meta/entities/ticket/fields/type").status_code == 200
    assert desk.owners(2) == ["bob", "bob"]


def test_an_inactive_rule_assigns_nothing(desk: Desk) -> None:
    desk.rule(tickets_rule(desk, active=False))
    assert desk.owners(2, priority="P2") == ["desk", "desk"]


def test_least_loaded_gives_the_record_to_whoever_holds_fewest_open_ones(desk: Desk) -> None:
    agents = [desk.users[n] for n in ("ann", "bob", "cyd")]
    for owner, count in (("ann", 2), ("bob", 1)):
        for _ in range(count):
            made = desk.api.post(
                f"{V1}/records/ticket", {"subject": "old", "owner": desk.users[owner]}
            )
            assert made.status_code == 201, made.text
    closed = desk.api.post(
        f"{V1}/records/ticket", {"subject": "done", "owner": agents[2], "status": "closed"}
    )
    assert closed.status_code == 201
    desk.rule(
        tickets_rule(
            desk,
            rules=[
                {"users": agents, "method": "least_loaded", "open_condition": 'status != "closed"'}
            ],
        )
    )
    # cyd holds none open (the closed one doesn't count), then bob and cyd tie at one: in turn.
    assert desk.owners(4) == ["cyd", "bob", "cyd", "ann"]


def test_a_user_field_left_empty_is_filled_on_create_and_on_update(desk: Desk) -> None:
    agents = [desk.users[n] for n in ("bob", "cyd")]
    desk.rule(
        tickets_rule(desk, field="agent", when="create_or_unassigned", rules=[{"users": agents}])
    )
    first = desk.create("ann").json()
    assert desk.owner_of(first["id"], "agent") == desk.users["bob"]
    assert desk.owner_of(first["id"]) == desk.users["ann"]  # the owner is not the rule's
    chosen = desk.create("ann", agent=desk.users["ann"]).json()
    assert desk.owner_of(chosen["id"], "agent") == desk.users["ann"]
    # Put back in the queue: the next write that leaves it unassigned assigns it again.
    back = desk.api.patch(f"{V1}/records/ticket/{first['id']}", {"agent": None})
    assert back.status_code == 200, back.text
    assert back.json()["agent"] == desk.users["cyd"]
    history = desk.api.get(f"{V1}/records/ticket/{first['id']}/history").json()["data"]
    assert history[0]["changes"]["agent"] == {"old": desk.users["bob"], "new": desk.users["cyd"]}


def test_a_rule_only_on_create_leaves_an_emptied_field_empty(desk: Desk) -> None:
    desk.rule(tickets_rule(desk, field="agent", rules=[{"users": [desk.users["bob"]]}]))
    record = desk.create("ann").json()
    emptied = desk.api.patch(f"{V1}/records/ticket/{record['id']}", {"agent": None})
    assert emptied.status_code == 200 and emptied.json()["agent"] is None


def test_rules_are_versioned_documents_with_every_problem_at_its_pointer(desk: Desk) -> None:
    api = desk.api
    created = desk.rule(tickets_rule(desk))
    assert created["version"] == 1 and created["label"] == {"en": "Ticket queues"}
    bad = tickets_rule(desk, field="subject", rules=[{"role": "ghost", "condition": "nope > 1"}])
    refused = api.put(f"{V1}/meta/assignment-rules/tickets", bad)
    assert refused.status_code == 422
    assert {(e["field"], e["code"]) for e in refused.json()["errors"]} == {
        ("/field", "not_user_field"),
        ("/rules/0/role", "unknown_role"),
        ("/rules/0/condition", "expression"),
    }
    changed = tickets_rule(desk, rules=[{"users": [desk.users["cyd"]]}], version=1)
    assert api.put(f"{V1}/meta/assignment-rules/tickets", changed).status_code == 200
    stale = api.put(f"{V1}/meta/assignment-rules/tickets", changed)
    assert stale.status_code == 412 and stale.json()["current_version"] == 2
    assert desk.owners(1, priority="P2") == ["cyd"]
    listed = api.get(f"{V1}/meta/assignment-rules").json()["data"]
    assert listed == [
        {
            "name": "tickets",
            "label": {"en": "Ticket queues"},
            "entity": "ticket",
            "field": "owner",
            "active": True,
            "rules": 1,
            "version": 2,
        }
    ]
    versions = api.get(f"{V1}/meta/assignment-rules/tickets/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    restored = api.post(f"{V1}/meta/assignment-rules/tickets/versions/1/restore")
    assert restored.status_code == 200 and restored.json()["version"] == 3
    assert desk.owners(1, priority="P2") == ["ann"]
    second = tickets_rule(desk, name="again")
    duplicate = api.post(f"{V1}/meta/assignment-rules", second)
    assert duplicate.status_code == 422
    assert duplicate.json()["errors"][0]["field"] == "/field"
    assert api.delete(f"{V1}/meta/assignment-rules/tickets").status_code == 204
    assert desk.owners(1, priority="P2") == ["desk"]
    assert api.post(f"{V1}/meta/assignment-rules", second).status_code == 201


def test_only_admins_design_assignment_rules(desk: Desk) -> None:
    refused = desk.api.post(
        f"{V1}/meta/assignment-rules", tickets_rule(desk), headers=desk.auth("ann")
    )
    assert refused.status_code == 403
    assert desk.api.get(f"{V1}/meta/assignment-rules", headers=desk.auth("ann")).status_code == 403


# ---- concurrency ----------------------------------------------------------------------------


class HoldBeforeAssigning(NoHook):
    """Registered before the assignment hook: while armed, holds each create at a barrier, so
    every create reaches the assignment at the same moment."""

    def __init__(self) -> None:
        self.barrier: threading.Barrier | None = None

    def before_write(
        self,
        records: Records,
        entity: EntityDef,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> dict[str, Any]:
        if self.barrier is not None and before is None:
            self.barrier.wait(timeout=30)
        return {}


def test_creates_at_once_never_take_the_same_turn(make_api: Any) -> None:
    hold = HoldBeforeAssigning()
    registry = build_registry()
    registry.write_hooks.insert(0, hold)
    api: Api = make_api(registry=registry)
    desk = make_desk(api)
    agents = [desk.users[n] for n in ("ann", "bob", "cyd")]
    desk.rule(tickets_rule(desk, rules=[{"users": agents}]))
    creates = 6
    if not is_sqlite(api.engine):
        # SQLite takes its write lock when a transaction begins: a barrier would wait forever.
        hold.barrier = threading.Barrier(creates)
    with writing(api.engine) as conn:
        creator = get_user(conn, desk.users["desk"])

    def create(i: int) -> str:
        with api.services.writing() as conn:
            made = api.records(conn, creator).create("ticket", {"subject": f"call {i}"})
            return str(made["id"])

    with ThreadPoolExecutor(max_workers=creates) as pool:
        ids = list(pool.map(create, range(creates)))
    hold.barrier = None
    owners = Counter(desk.owner_of(record_id) for record_id in ids)
    assert owners == {agent: 2 for agent in agents}
    with reading(api.engine) as conn:
        turn = conn.execute(select(assignment_turns)).one()
    assert (turn.rule, turn.queue, turn.assigned) == ("tickets", "0", creates)


def test_init_adds_the_new_tables_to_an_existing_database(api: Api) -> None:
    with writing(api.engine) as conn:
        conn.execute(text("DROP TABLE mc_assignment_turns"))
        conn.execute(text("DROP TABLE mc_personal_views"))
    assert not inspect(api.engine).has_table("mc_assignment_turns")
    install(api.engine)
    tables = set(inspect(api.engine).get_table_names())
    assert {"mc_assignment_turns", "mc_personal_views"} <= tables
