"""Record actions over HTTP on SQLite and PostgreSQL (docs/api.md, "Record actions"): designing
them as metadata (every problem at once), listing a record's actions with why each is
unavailable per user, running every kind of step, input checked against the input schema, the
condition (409), the permission (403), the approval lock (423), unknown actions and unreadable
records (404), a failing later step leaving nothing behind, hooks registered at start-up, the
`action.executed` event, and entity deletion blocked by actions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from conftest import Api
from sqlalchemy import func, select
from starlette.testclient import TestClient

from metacrm.metadata.model import EntityDef
from metacrm.platform.db import reading
from metacrm.platform.errors import Unprocessable
from metacrm.platform.systables import events
from metacrm.runtime.api.app import build_app
from metacrm.runtime.context import Records
from metacrm.runtime.startup import build_registry, build_services

V1 = "/api/v1"
ACTIONS = f"{V1}/meta/actions"
RECORDS = f"{V1}/records"

CUSTOMER = {
    "name": "customer",
    "label": {"en": "Customer"},
    "title_field": "name",
    "fields": [{"name": "name", "type": "text", "required": True}],
}
TICKET = {
    "name": "ticket",
    "label": {"en": "Ticket", "zh-CN": "服务工单"},
    "title_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "required": True},
        {"name": "customer", "type": "lookup", "target": "customer"},
        {
            "name": "status",
            "type": "picklist",
            "default": "new",
            "options": [{"value": k} for k in ("new", "resolved", "closed")],
        },
        {
            "name": "priority",
            "type": "picklist",
            "default": "P3",
            "options": [{"value": p} for p in ("P1", "P2", "P3")],
        },
        {"name": "resolution", "type": "textarea"},
        {"name": "satisfaction", "type": "integer", "min": 1, "max": 5},
        {"name": "comment", "type": "textarea"},
        {"name": "closed_on", "type": "date"},
        {"name": "number", "type": "autonumber", "pattern": "TKT-{seq:4}"},
    ],
}
ACTIVITY = {
    "name": "activity",
    "label": {"en": "Activity"},
    "title_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "required": True},
        {"name": "ticket", "type": "lookup", "target": "ticket"},
        {"name": "due", "type": "date"},
        {
            "name": "channel",
            "type": "picklist",
            "options": [{"value": "phone"}, {"value": "email"}],
        },
    ],
}
PIPELINE = {
    "name": "ticket_status",
    "label": {"en": "Ticket status"},
    "entity": "ticket",
    "field": "status",
    "stages": [
        {"key": "new", "label": {"en": "New"}, "category": "open", "probability": 0},
        {
            "key": "resolved",
            "label": {"en": "Resolved"},
            "category": "open",
            "probability": 50,
            "required_fields": ["resolution"],
        },
        {"key": "closed", "label": {"en": "Closed"}, "category": "won", "probability": 100},
    ],
}
PROCESS = {
    "name": "escalation",
    "label": {"en": "Escalation"},
    "entity": "ticket",
    "steps": [
        {"name": "boss", "label": {"en": "Boss"}, "approvers": [{"type": "role", "role": "boss"}]}
    ],
}
# Agents read and change their own tickets; helpers read every ticket and change their own;
# viewers only read. Everyone reads and creates activities.
ACTIVITIES = {"actions": {"read": "all", "create": "own"}}
ROLES = [
    {
        "name": "agent",
        "label": {"en": "Agent"},
        "entities": {
            "ticket": {"actions": {"read": "own", "update": "own", "create": "own"}},
            "activity": ACTIVITIES,
        },
    },
    {
        "name": "helper",
        "label": {"en": "Helper"},
        "entities": {
            "ticket": {"actions": {"read": "all", "update": "own"}},
            "activity": ACTIVITIES,
        },
    },
    {
        "name": "viewer",
        "label": {"en": "Viewer"},
        "entities": {"ticket": {"actions": {"read": "all"}}, "activity": ACTIVITIES},
    },
    {"name": "boss", "label": {"en": "Boss"}, "entities": {"ticket": {"actions": {"read": "all"}}}},
]

CLOSE = {
    "name": "close",
    "label": {"en": "Close", "zh-CN": "关闭"},
    "entity": "ticket",
    "permission": "update",
    "condition": 'status == "resolved"',
    "unavailable_message": {
        "en": "Only a resolved ticket can be closed",
        "zh-CN": "只能关闭已解决的工单",
    },
    "input_schema": {
        "type": "object",
        "required": ["satisfaction"],
        "additionalProperties": False,
        "properties": {
            "satisfaction": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": "string", "maxLength": 500},
            "closed_on": {"type": "string", "format": "date"},
        },
    },
    "steps": [
        {
            "type": "set_fields",
            "values": {
                "satisfaction": "input.satisfaction",
                "comment": "coalesce(input.comment, comment)",
                "closed_on": "coalesce(input.closed_on, today())",
            },
        },
        {"type": "move_stage", "stage": "closed"},
    ],
}
RESOLVE = {
    "name": "resolve",
    "label": "Resolve",
    "entity": "ticket",
    "permission": "update",
    "steps": [{"type": "move_stage", "pipeline": "ticket_status", "stage": "resolved"}],
}
FOLLOW_UP = {
    "name": "follow_up",
    "label": {"en": "Follow up"},
    "entity": "ticket",
    "permission": "read",
    "input_schema": {
        "type": "object",
        "required": ["subject"],
        "properties": {
            "subject": {"type": "string", "minLength": 1},
            "due": {"type": "string", "format": "date"},
            "meta": {
                "type": "object",
                "properties": {"channel": {"enum": ["phone", "email"]}},
            },
        },
    },
    "steps": [
        {
            "type": "create_record",
            "entity": "activity",
            "values": {
                "subject": 'concat(input.subject, " (", subject, ")")',
                "ticket": "id",
                "due": "add_days(input.due, 1)",
                "channel": "input.meta.channel",
            },
        }
    ],
}
ESCALATE = {
    "name": "escalate",
    "label": {"en": "Escalate"},
    "entity": "ticket",
    "permission": "update",
    "steps": [
        {"type": "set_fields", "values": {"priority": '"P1"'}},
        {"type": "submit_approval", "process": "escalation"},
    ],
}
# Raises the priority, then creates an activity without its required subject: refused.
BROKEN = {
    "name": "broken",
    "label": {"en": "Broken later"},
    "entity": "ticket",
    "permission": "update",
    "steps": [
        {"type": "set_fields", "values": {"priority": '"P1"'}},
        {"type": "create_record", "entity": "activity", "values": {"ticket": "id"}},
    ],
}


def made(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def field_errors(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


@dataclass
class Desk:
    api: Api
    tokens: dict[str, str]
    ids: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who != "admin" else {}

    def ticket(self, who: str = "admin", **values: Any) -> dict[str, Any]:
        body = {"subject": "Printer on fire", **values}
        return made(self.api.post(f"{RECORDS}/ticket", body, headers=self.as_(who)))

    def actions(self, ticket_id: str, who: str = "admin") -> Any:
        return self.api.get(f"{RECORDS}/ticket/{ticket_id}/actions", headers=self.as_(who))

    def listed(self, ticket_id: str, who: str = "admin") -> dict[str, dict[str, Any]]:
        return {a["name"]: a for a in made(self.actions(ticket_id, who), 200)["data"]}

    def run(self, ticket_id: str, action: str, body: Any = None, who: str = "admin") -> Any:
        path = f"{RECORDS}/ticket/{ticket_id}/actions/{action}"
        return self.api.post(path, body, headers=self.as_(who))

    def record(self, ticket_id: str) -> dict[str, Any]:
        return made(self.api.get(f"{RECORDS}/ticket/{ticket_id}"), 200)


def build_desk(api: Api, actions: tuple[dict[str, Any], ...]) -> Desk:
    for entity in (CUSTOMER, TICKET, ACTIVITY):
        api.make_entity(entity)
    made(api.post(f"{V1}/meta/pipelines", PIPELINE))
    for role in ROLES:
        made(api.post(f"{V1}/meta/roles", role))
    made(api.post(f"{V1}/meta/approval-processes", PROCESS))
    for action in actions:
        made(api.post(ACTIONS, action))
    tokens, ids = {}, {"admin": api.get(f"{V1}/me").json()["id"]}
    for who in ("agent", "helper", "viewer", "boss"):
        tokens[who] = api.new_user(f"{who}@example.com", roles=(who,))
        me = api.get(f"{V1}/me", headers={"Authorization": f"Bearer {tokens[who]}"})
        ids[who] = me.json()["id"]
    return Desk(api, tokens, ids)


@pytest.fixture
def desk(api: Api) -> Desk:
    return build_desk(api, (CLOSE, RESOLVE, FOLLOW_UP, ESCALATE, BROKEN))


def action_events(api: Api) -> list[Any]:
    with reading(api.engine) as conn:
        return list(
            conn.execute(
                select(events.c.type, events.c.record_id, events.c.actor, events.c.payload)
                .where(events.c.type == "action.executed")
                .order_by(events.c.id)
            )
        )


def count_events(api: Api) -> int:
    with reading(api.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


# ---- designing actions ----------------------------------------------------------------------


def test_actions_are_stored_under_entity_and_name_versioned_and_listed(desk: Desk) -> None:
    api = desk.api
    got = made(api.get(f"{ACTIONS}/ticket.close"), 200)
    assert got == {**CLOSE, "version": 1}
    # Another entity may have an action of the same name.
    other = {**RESOLVE, "entity": "customer", "steps": [{"type": "set_fields", "values": {}}]}
    assert ("/steps/0/values", "minProperties") in field_errors(api.post(ACTIONS, other))
    other["steps"] = [{"type": "set_fields", "values": {"name": "upper(name)"}}]
    assert made(api.post(ACTIONS, other))["name"] == "resolve"
    listed = {a["name"]: a for a in made(api.get(ACTIONS), 200)["data"]}
    assert listed["ticket.close"] == {
        "name": "ticket.close",
        "action": "close",
        "label": CLOSE["label"],
        "entity": "ticket",
        "permission": "update",
        "steps": ["set_fields", "move_stage"],
        "version": 1,
    }
    assert {"customer.resolve", "ticket.resolve"} <= set(listed)
    assert api.post(ACTIONS, CLOSE).status_code == 409
    changed = made(api.put(f"{ACTIONS}/ticket.close", {**CLOSE, "version": 1}), 200)
    assert changed["version"] == 2
    assert api.put(f"{ACTIONS}/ticket.close", {**CLOSE, "version": 1}).status_code == 412
    moved = api.put(f"{ACTIONS}/ticket.close", {**CLOSE, "entity": "customer", "name": "shut"})
    assert field_errors(moved) == {("/entity", "rename"), ("/name", "rename")}
    versions = made(api.get(f"{ACTIONS}/ticket.close/versions"), 200)["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert api.delete(f"{ACTIONS}/customer.resolve").status_code == 204
    assert api.get(f"{ACTIONS}/customer.resolve").status_code == 404
    assert api.get(ACTIONS, headers=desk.as_("agent")).status_code == 403


def test_an_invalid_action_is_refused_with_every_problem_at_its_pointer(desk: Desk) -> None:
    doc = {
        "name": "bad",
        "label": "Bad",
        "entity": "ticket",
        "permission": "fly",
        "condition": "satisfaction + 1",
        "input_schema": {
            "type": "object",
            "properties": {"note": {"type": "string"}, "tags": {"type": "array"}},
        },
        "steps": [
            {
                "type": "set_fields",
                "values": {
                    "nope": '"x"',
                    "number": '"TKT-1"',
                    "satisfaction": "input.note",
                    "comment": "input.missing",
                },
            },
            {"type": "move_stage", "stage": "archived"},
            {"type": "create_record", "entity": "ghost", "values": {}},
            {"type": "create_record", "entity": "activity", "values": {"due": "subject"}},
            {"type": "submit_approval", "process": "nobody"},
            {"type": "hook", "name": "not.registered"},
            {"type": "teleport"},
        ],
    }
    problems = field_errors(desk.api.post(ACTIONS, doc))
    assert problems == {
        ("/permission", "enum"),
        ("/steps/6/type", "enum"),
        ("/condition", "expression"),
        ("/input_schema/properties/tags", "items"),
        ("/steps/0/values/nope", "unknown_field"),
        ("/steps/0/values/number", "read_only"),
        ("/steps/1/stage", "unknown_stage"),
        ("/steps/2/entity", "unknown_entity"),
        ("/steps/4/process", "unknown_process"),
        ("/steps/5/name", "unknown_hook"),
    }
    # Expressions may read the input: they are judged once its schema is sound.
    doc["input_schema"]["properties"]["tags"]["items"] = {"type": "string"}
    doc["permission"] = "update"
    problems = field_errors(desk.api.post(ACTIONS, doc))
    assert {("/steps/0/values/satisfaction", "expression")} <= problems
    assert {("/steps/0/values/comment", "expression")} <= problems
    assert {("/steps/3/values/due", "expression")} <= problems
    messages = {e["field"]: e["message"] for e in desk.api.post(ACTIONS, doc).json()["errors"]}
    assert "must give integer, but it gives text" in messages["/steps/0/values/satisfaction"]
    assert "has no key 'missing'" in messages["/steps/0/values/comment"]


def test_input_schemas_must_be_self_contained_objects(desk: Desk) -> None:
    base = {**RESOLVE, "name": "odd"}
    schemas = {
        "/input_schema/type": {"type": "string"},
        "/input_schema/properties/a/$ref": {
            "type": "object",
            "properties": {"a": {"$ref": "https://example.com/s.json"}},
        },
        "/input_schema/properties/b/type": {"type": "object", "properties": {"b": {"type": 7}}},
    }
    for where, schema in schemas.items():
        errors = {
            e for e, _ in field_errors(desk.api.post(ACTIONS, {**base, "input_schema": schema}))
        }
        assert where in errors, (where, errors)


def test_a_condition_that_cannot_run_in_sql_or_reads_input_is_refused(desk: Desk) -> None:
    doc = {**RESOLVE, "name": "odd", "condition": "changed(status)"}
    assert ("/condition", "expression") in field_errors(desk.api.post(ACTIONS, doc))
    doc = {**RESOLVE, "name": "odd", "condition": "input.x == 1"}
    assert ("/condition", "expression") in field_errors(desk.api.post(ACTIONS, doc))
    doc = {**RESOLVE, "name": "odd", "unavailable_message": "never"}
    assert ("/unavailable_message", "unused") in field_errors(desk.api.post(ACTIONS, doc))


def test_a_name_too_long_with_its_entity_is_refused(desk: Desk) -> None:
    doc = {**RESOLVE, "name": "r" * 60}
    assert ("/name", "too_long") in field_errors(desk.api.post(ACTIONS, doc))


# ---- listing --------------------------------------------------------------------------------


def test_the_listing_says_per_user_which_actions_are_available_and_why_not(desk: Desk) -> None:
    own = desk.ticket("agent")
    admins = desk.ticket()
    listed = desk.listed(own["id"], "agent")
    assert list(listed) == ["broken", "close", "escalate", "follow_up", "resolve"]
    assert listed["resolve"] == {"name": "resolve", "label": {"en": "Resolve"}, "available": True}
    assert listed["close"]["available"] is False
    assert listed["close"]["reason_code"] == "condition"
    assert listed["close"]["reason"] == CLOSE["unavailable_message"]
    assert listed["close"]["input_schema"] == CLOSE["input_schema"]
    assert listed["follow_up"]["available"] is True
    # A helper reads every ticket but changes only their own.
    helped = desk.listed(admins["id"], "helper")
    assert helped["follow_up"]["available"] is True
    assert helped["resolve"]["available"] is False
    assert helped["resolve"]["reason_code"] == "permission"
    assert "update" in helped["resolve"]["reason"]["en"]
    # A viewer can never update tickets: only the read action is listed.
    assert list(desk.listed(admins["id"], "viewer")) == ["follow_up"]
    # The condition is judged on the record as it is now.
    made(desk.api.patch(f"{RECORDS}/ticket/{own['id']}", {"resolution": "Water"}), 200)
    made(desk.run(own["id"], "resolve", who="agent"), 200)
    assert desk.listed(own["id"], "agent")["close"]["available"] is True


def test_a_record_the_caller_may_not_read_has_no_actions_to_list_or_run(desk: Desk) -> None:
    admins = desk.ticket()
    assert desk.actions(admins["id"], "agent").status_code == 404
    assert desk.run(admins["id"], "follow_up", {"subject": "x"}, "agent").status_code == 404
    assert desk.actions("01J00000000000000000000000").status_code == 404
    assert desk.api.get(f"{RECORDS}/nothing/x/actions").status_code == 404


def test_a_condition_reads_the_caller_and_formulas_in_sql(api: Api) -> None:
    desk = build_desk(api, ())
    made(api.post(f"{V1}/meta/entities/ticket/fields", {
        "name": "score", "type": "formula", "result_type": "integer",
        "expression": "coalesce(satisfaction, 0) * 2",
    }))  # fmt: skip
    mine = {
        **RESOLVE,
        "name": "mine",
        "condition": "owner == $user.id and score >= 6",
        "unavailable_message": "Not yours, or not liked enough",
    }
    made(api.post(ACTIONS, mine))
    ticket = desk.ticket("agent", satisfaction=3)
    assert desk.listed(ticket["id"], "agent")["mine"]["available"] is True
    made(api.patch(f"{RECORDS}/ticket/{ticket['id']}", {"satisfaction": 2}), 200)
    assert desk.listed(ticket["id"], "agent")["mine"]["available"] is False
    made(api.patch(f"{RECORDS}/ticket/{ticket['id']}", {"satisfaction": 5}), 200)
    # The admin may run it on anyone's ticket, but it isn't theirs.
    assert desk.listed(ticket["id"])["mine"]["reason"] == {"en": "Not yours, or not liked enough"}


# ---- running --------------------------------------------------------------------------------


def test_set_fields_and_move_stage_write_for_the_process_and_name_the_caller(desk: Desk) -> None:
    ticket = desk.ticket("agent", resolution="Unplugged it", status="resolved")
    result = made(
        desk.run(ticket["id"], "close", {"satisfaction": 4, "closed_on": "2030-01-02"}, "agent"),
        200,
    )["result"]
    record = result["record"]
    assert (record["status"], record["satisfaction"], record["closed_on"]) == (
        "closed",
        4,
        "2030-01-02",
    )
    assert set(result) == {"record"}
    history = made(desk.api.get(f"{RECORDS}/ticket/{ticket['id']}/history"), 200)["data"]
    assert [h["changed_by"] for h in history[:2]] == [desk.ids["agent"]] * 2
    assert history[0]["changes"]["status"] == {"old": "resolved", "new": "closed"}


def test_a_default_comes_from_the_record_and_today_when_the_input_leaves_it_out(
    desk: Desk,
) -> None:
    ticket = desk.ticket(resolution="r", status="resolved", comment="kept")
    record = made(desk.run(ticket["id"], "close", {"satisfaction": 5}), 200)["result"]["record"]
    assert record["comment"] == "kept" and record["closed_on"] is not None


def test_move_stage_is_an_ordinary_write_its_gates_apply(desk: Desk) -> None:
    ticket = desk.ticket("agent")
    refused = desk.run(ticket["id"], "resolve", who="agent")
    assert ("resolution", "required_for_stage") in field_errors(refused)
    assert "resolve, step 1 (move_stage)" in refused.json()["detail"]
    assert desk.record(ticket["id"])["status"] == "new"


def test_create_record_makes_a_record_from_the_record_and_the_input(desk: Desk) -> None:
    ticket = desk.ticket()
    body = {"subject": "Call back", "due": "2030-03-01", "meta": {"channel": "phone"}}
    result = made(desk.run(ticket["id"], "follow_up", body, "viewer"), 200)["result"]
    [created] = result["created"]
    assert created["entity"] == "activity"
    activity = made(desk.api.get(f"{RECORDS}/activity/{created['id']}"), 200)
    assert activity["subject"] == "Call back (Printer on fire)"
    assert (activity["ticket"], activity["due"], activity["channel"]) == (
        ticket["id"],
        "2030-03-02",
        "phone",
    )
    # Created for the process by the caller, who owns it.
    assert activity["owner"] == desk.ids["viewer"]


def test_submit_approval_opens_an_approval_and_the_lock_then_refuses_actions(desk: Desk) -> None:
    ticket = desk.ticket("agent")
    result = made(desk.run(ticket["id"], "escalate", who="agent"), 200)["result"]
    [approval] = result["approvals"]
    assert approval["process"] == "escalation"
    assert result["record"]["priority"] == "P1"
    got = made(desk.api.get(f"{V1}/approvals/{approval['id']}"), 200)
    assert (got["status"], got["submitted_by"]) == ("pending", desk.ids["agent"])
    locked = desk.run(ticket["id"], "resolve", who="agent")
    assert locked.status_code == 423, locked.text
    listed = desk.listed(ticket["id"], "agent")
    assert listed["resolve"]["reason_code"] == "refused"
    # Admins pass the lock, as with any write.
    assert desk.run(ticket["id"], "follow_up", {"subject": "x"}).status_code == 200


def test_a_step_naming_what_is_gone_is_a_422_that_changes_nothing(desk: Desk) -> None:
    ticket = desk.ticket()
    assert desk.api.delete(f"{V1}/meta/approval-processes/escalation").status_code == 204
    refused = desk.run(ticket["id"], "escalate")
    assert refused.status_code == 422, refused.text
    assert "escalate, step 2 (submit_approval) can't run" in refused.json()["detail"]
    assert desk.record(ticket["id"])["priority"] == "P3"


def test_input_the_schema_refuses_is_a_422_at_each_key_path(desk: Desk) -> None:
    ticket = desk.ticket(resolution="r", status="resolved")
    before = count_events(desk.api)
    bad = desk.run(ticket["id"], "close", {"satisfaction": 9, "closed_on": "2030-02-30", "x": 1})
    assert field_errors(bad) == {
        ("satisfaction", "maximum"),
        ("closed_on", "format"),
        ("x", "unknown_field"),
    }
    messages = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert messages["satisfaction"] == "must be at most 5"
    assert messages["closed_on"] == "is not a real date"
    assert field_errors(desk.run(ticket["id"], "close", {})) == {("satisfaction", "required")}
    assert field_errors(desk.run(ticket["id"], "close", [1])) == {("", "type")}
    nested = desk.run(ticket["id"], "follow_up", {"subject": "s", "meta": {"channel": "fax"}})
    assert field_errors(nested) == {("meta.channel", "enum")}
    nul = desk.run(ticket["id"], "follow_up", {"subject": "a\x00b"})
    assert field_errors(nul) == {("subject", "format")}
    no_input = desk.run(ticket["id"], "resolve", {"why": "because"})
    assert field_errors(no_input) == {("why", "unknown_field")}
    assert desk.record(ticket["id"])["status"] == "resolved"
    assert count_events(desk.api) == before


def test_an_unmet_condition_is_a_409_with_the_reason(desk: Desk) -> None:
    ticket = desk.ticket("agent")
    refused = desk.run(ticket["id"], "close", {"satisfaction": 3}, "agent")
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["reason"] == CLOSE["unavailable_message"]
    assert problem["reason_code"] == "condition"
    assert "Only a resolved ticket can be closed" in problem["detail"]
    # The condition is judged before the input: bad input to an unavailable action is a 409.
    assert desk.run(ticket["id"], "close", {"satisfaction": 99}, "agent").status_code == 409


def test_without_the_permission_on_the_record_running_is_a_403(desk: Desk) -> None:
    admins = desk.ticket()
    assert desk.run(admins["id"], "resolve", who="helper").status_code == 403
    assert desk.run(admins["id"], "resolve", who="viewer").status_code == 403
    assert desk.record(admins["id"])["status"] == "new"


def test_an_unknown_action_is_a_404(desk: Desk) -> None:
    ticket = desk.ticket()
    assert desk.run(ticket["id"], "fly").status_code == 404
    assert desk.run(ticket["id"], "close.x").status_code == 404


def test_a_failing_later_step_rolls_back_every_step_before_it(desk: Desk) -> None:
    ticket = desk.ticket("agent")
    before = count_events(desk.api)
    refused = desk.run(ticket["id"], "broken", who="agent")
    assert ("activity.subject", "required") in field_errors(refused)
    assert "broken, step 2 (create_record)" in refused.json()["detail"]
    assert desk.record(ticket["id"])["priority"] == "P3"
    assert made(desk.api.get(f"{RECORDS}/activity"), 200)["data"] == []
    history = made(desk.api.get(f"{RECORDS}/ticket/{ticket['id']}/history"), 200)["data"]
    assert len(history) == 1
    assert count_events(desk.api) == before
    assert action_events(desk.api) == []


def test_running_publishes_action_executed_with_input_and_result(desk: Desk) -> None:
    ticket = desk.ticket("agent")
    body = {"subject": "Visit", "due": "2030-01-01"}
    created = made(desk.run(ticket["id"], "follow_up", body, "agent"), 200)["result"]["created"]
    [event] = action_events(desk.api)
    assert (event.record_id, event.actor) == (ticket["id"], desk.ids["agent"])
    assert event.payload == {
        "entity": "ticket",
        "record_id": ticket["id"],
        "action": "follow_up",
        "input": body,
        "result": {"created": created},
    }
    hook = {"name": "n", "url": "https://example.com/h", "events": ["action.executed"]}
    assert made(desk.api.post(f"{V1}/webhooks", hook))["events"] == ["action.executed"]


def test_actions_block_deleting_the_entities_they_use(desk: Desk) -> None:
    refused = desk.api.delete(f"{V1}/meta/entities/activity")
    assert ("/actions/ticket.follow_up/steps/0/entity", "action_step") in field_errors(refused)
    ticket_refused = field_errors(desk.api.delete(f"{V1}/meta/entities/ticket"))
    assert {("/actions/ticket.close/entity", "action")} <= ticket_refused


def test_an_expression_reading_through_a_lookup_blocks_deleting_its_target(api: Api) -> None:
    build_desk(api, ())
    reads = {
        **RESOLVE,
        "name": "stamp",
        "steps": [{"type": "set_fields", "values": {"comment": "customer.name"}}],
    }
    made(api.post(ACTIONS, reads))
    refused = field_errors(api.delete(f"{V1}/meta/entities/customer"))
    assert ("/actions/ticket.stamp/steps/0/values/comment", "reads_through") in refused


# ---- hooks ----------------------------------------------------------------------------------


def convert(
    records: Records, entity: EntityDef, record_id: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    """A plugin's hook: writes through the record service it is given."""
    ticket = records.get(entity.name, record_id)
    customer = records.create("customer", {"name": given["company"]})
    records.update(entity.name, record_id, {"customer": customer["id"]})
    if given.get("fail"):
        raise Unprocessable("the hook refuses")
    return {"customer": customer["id"], "weight": Decimal("1.50"), "was": ticket["subject"]}


@pytest.fixture
def hooked(make_api: Callable[..., Api]) -> Iterator[Desk]:
    registry = build_registry()
    registry.action_hook("test.convert", convert)
    api = make_api(registry=registry)
    action = {
        "name": "convert",
        "label": "Convert",
        "entity": "ticket",
        "permission": "update",
        "input_schema": {
            "type": "object",
            "required": ["company"],
            "properties": {"company": {"type": "string"}, "fail": {"type": "boolean"}},
        },
        "steps": [
            {"type": "set_fields", "values": {"priority": '"P2"'}},
            {"type": "hook", "name": "test.convert"},
        ],
    }
    yield build_desk(api, (action,))


def test_a_hook_registered_at_start_up_runs_as_a_step_and_returns_its_result(
    hooked: Desk,
) -> None:
    ticket = hooked.ticket("agent")
    result = made(hooked.run(ticket["id"], "convert", {"company": "Acme"}, "agent"), 200)["result"]
    assert result["weight"] == "1.50" and result["was"] == "Printer on fire"
    assert result["record"]["customer"] == result["customer"]
    assert result["record"]["priority"] == "P2"
    customer = made(hooked.api.get(f"{RECORDS}/customer/{result['customer']}"), 200)
    # The agent may not create customers: the hook wrote for the process, as the agent.
    assert customer["created_by"] == hooked.ids["agent"]
    [event] = action_events(hooked.api)
    assert event.payload["result"] == {
        "customer": result["customer"],
        "weight": "1.50",
        "was": "Printer on fire",
    }


def test_a_hook_that_fails_leaves_nothing_of_the_action(hooked: Desk) -> None:
    ticket = hooked.ticket("agent")
    refused = hooked.run(ticket["id"], "convert", {"company": "Acme", "fail": True}, "agent")
    assert refused.status_code == 422, refused.text
    assert "step 2 (hook)" in refused.json()["detail"]
    assert hooked.record(ticket["id"])["priority"] == "P3"
    assert made(hooked.api.get(f"{RECORDS}/customer"), 200)["data"] == []


def test_an_action_whose_hook_this_server_lacks_is_unavailable_and_refused(
    hooked: Desk,
) -> None:
    # The same database served by a process without the plugin: the built-in registry.
    ticket = hooked.ticket("agent")
    services = build_services(hooked.api.services.settings, hooked.api.engine)
    assert "test.convert" not in services.registry.actions
    app = build_app(services.settings, services=services)
    headers = {"Authorization": f"Bearer {hooked.tokens['agent']}"}
    path = f"{RECORDS}/ticket/{ticket['id']}/actions"
    with TestClient(app, raise_server_exceptions=False) as client:
        [convert_listed] = made(client.get(path, headers=headers), 200)["data"]
        assert convert_listed["available"] is False
        assert convert_listed["reason_code"] == "hook"
        refused = client.post(f"{path}/convert", json={"company": "Acme"}, headers=headers)
        assert refused.status_code == 409, refused.text
    assert hooked.record(ticket["id"])["priority"] == "P3"


def test_registering_a_hook_twice_or_under_a_bad_name_is_refused() -> None:
    registry = build_registry()
    registry.action_hook("crm.convert_lead", convert)
    with pytest.raises(ValueError, match="already registered"):
        registry.action_hook("crm.convert_lead", convert)
    with pytest.raises(ValueError, match="can't name"):
        registry.action_hook("Bad Name", convert)
