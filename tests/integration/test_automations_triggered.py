"""Triggered automations over HTTP on SQLite and PostgreSQL, built from automation documents:
a lead's status moves by itself when it gets an owner and with its first follow-up; an activity
updates its parent through the record service (gates, history and events apply); SLA due times
are set by priority in the write that creates the ticket; a cycle of automations is stopped; a
write that fails leaves no related update behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Api
from sqlalchemy import select
from test_automations_common import (
    ACTIVITIES,
    ACTIVITY_FOLLOWS_UP,
    AUTOMATIONS,
    CUSTOMERS,
    LEAD_ASSIGNED,
    LEADS,
    PRIORITIES,
    SLA_HOURS,
    TASK,
    TICKET,
    TICKET_SLA,
    TICKETS,
    V1,
    automate,
    created,
    crm,
    errors,
    events_of,
    history,
    lead_pipeline,
    ok,
)
from test_openapi_complete import conforms, document_of

from metacrm.platform.db import reading
from metacrm.platform.systables import stage_history

T0 = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def user(api: Api, email: str) -> str:
    token = api.new_user(email)
    return str(ok(api.get(f"{V1}/me", headers={"Authorization": f"Bearer {token}"}))["id"])


def visits(api: Api, lead_id: str) -> list[str]:
    """The stages the lead entered, in order (the pipeline's stage history)."""
    with reading(api.engine) as conn:
        rows = conn.execute(
            select(stage_history.c.stage)
            .where(stage_history.c.record_id == lead_id)
            .order_by(stage_history.c.id)
        )
        return [r.stage for r in rows]


# ---- lead status by owner ---------------------------------------------------------------------


def test_a_new_lead_with_an_owner_is_pending_in_the_write_that_creates_it(api: Api) -> None:
    crm(api, pipeline=lead_pipeline())
    automate(api, LEAD_ASSIGNED)
    lead = created(api.post(LEADS, {"company": "Acme"}))
    assert (lead["status"], lead["version"]) == ("pending", 1)
    assert lead["stage_entered_at"] is not None
    [entry] = history(api, f"{LEADS}/{lead['id']}")
    assert entry["changes"]["status"] == {"old": None, "new": "pending"}
    assert visits(api, lead["id"]) == ["pending"]


def test_giving_an_unassigned_lead_an_owner_makes_it_pending(api: Api) -> None:
    crm(api, pipeline=lead_pipeline())
    automate(api, {**LEAD_ASSIGNED, "active": False})
    lead = created(api.post(LEADS, {"company": "Acme"}))
    other = created(api.post(LEADS, {"company": "Globex"}))
    assert (lead["status"], other["status"]) == ("unassigned", "unassigned")
    current = ok(api.get(f"{AUTOMATIONS}/lead_assigned"))
    ok(api.put(f"{AUTOMATIONS}/lead_assigned", {**current, "active": True}))

    rep = user(api, "rep@example.com")
    assigned = ok(api.patch(f"{LEADS}/{lead['id']}", {"owner": rep}))
    assert (assigned["owner"], assigned["status"], assigned["version"]) == (rep, "pending", 2)
    last = history(api, f"{LEADS}/{lead['id']}")[-1]
    assert set(last["changes"]) >= {"owner", "status"}
    assert visits(api, lead["id"]) == ["unassigned", "pending"]
    # Any other change of an unassigned lead leaves its status alone.
    renamed = ok(api.patch(f"{LEADS}/{other['id']}", {"company": "Globex Ltd"}))
    assert renamed["status"] == "unassigned"


def test_a_stage_an_automation_sets_is_gated_like_one_sent(api: Api) -> None:
    pipeline = lead_pipeline()
    pipeline["stages"][1]["entry_condition"] = 'company != "Shady"'
    crm(api, pipeline=pipeline)
    automate(api, LEAD_ASSIGNED)
    refused = api.post(LEADS, {"company": "Shady"})
    assert refused.status_code == 422, refused.text
    assert errors(refused) == {("status", "gate")}
    assert ok(api.get(LEADS))["data"] == []


# ---- activities update their parent --------------------------------------------------------


def test_an_activity_updates_its_lead_and_moves_a_pending_one_to_following_up(api: Api) -> None:
    crm(api, pipeline=lead_pipeline())
    automate(api, LEAD_ASSIGNED, ACTIVITY_FOLLOWS_UP)
    lead = created(api.post(LEADS, {"company": "Acme"}))
    first_time, next_time = T0, T0 + timedelta(days=3)
    first = {"subject": "Call", "lead": lead["id"], "time": iso(first_time)}
    created(api.post(ACTIVITIES, {**first, "next_contact_time": iso(next_time)}))
    followed = ok(api.get(f"{LEADS}/{lead['id']}"))
    assert followed["status"] == "following_up"
    assert followed["last_follow_up_at"] == iso(first_time)
    assert followed["next_follow_up_at"] == iso(next_time)
    assert visits(api, lead["id"]) == ["pending", "following_up"]
    # Through the record service: history and the record event name the change.
    last = history(api, f"{LEADS}/{lead['id']}")[-1]
    assert set(last["changes"]) == {
        "status",
        "stage_entered_at",
        "last_follow_up_at",
        "next_follow_up_at",
    }
    updated = [e for e in events_of(api, "record.updated") if e.record_id == lead["id"]]
    assert len(updated) == 1

    # A later activity without a next contact time keeps the lead's next follow-up.
    later = T0 + timedelta(days=1)
    created(api.post(ACTIVITIES, {"subject": "Email", "lead": lead["id"], "time": iso(later)}))
    again = ok(api.get(f"{LEADS}/{lead['id']}"))
    assert (again["status"], again["last_follow_up_at"]) == ("following_up", iso(later))
    assert again["next_follow_up_at"] == iso(next_time)


def test_an_activity_updates_whichever_parent_it_names(api: Api) -> None:
    crm(api)
    automate(api, ACTIVITY_FOLLOWS_UP)
    customer = created(api.post(CUSTOMERS, {"name": "Initech"}))
    lead = created(api.post(LEADS, {"company": "Acme"}))
    created(api.post(ACTIVITIES, {"subject": "Visit", "customer": customer["id"], "time": iso(T0)}))
    assert ok(api.get(f"{CUSTOMERS}/{customer['id']}"))["last_follow_up_at"] == iso(T0)
    untouched = ok(api.get(f"{LEADS}/{lead['id']}"))
    assert (untouched["version"], untouched["last_follow_up_at"]) == (1, None)
    # Neither parent: nothing to update, and the activity is saved.
    created(api.post(ACTIVITIES, {"subject": "Note"}))


def test_a_lead_whose_gate_refuses_the_follow_up_refuses_the_activity(api: Api) -> None:
    crm(api, pipeline=lead_pipeline("next_follow_up_at is not null"))
    automate(api, LEAD_ASSIGNED, ACTIVITY_FOLLOWS_UP)
    lead = created(api.post(LEADS, {"company": "Acme"}))
    refused = api.post(ACTIVITIES, {"subject": "Call", "lead": lead["id"], "time": iso(T0)})
    assert refused.status_code == 422, refused.text
    assert errors(refused) == {("lead.status", "gate")}
    assert "activity_follows_up" not in refused.json()["detail"]
    assert "An activity follows its parent up" in refused.json()["detail"]
    assert ok(api.get(ACTIVITIES))["data"] == []
    current = ok(api.get(f"{LEADS}/{lead['id']}"))
    assert (current["status"], current["last_follow_up_at"], current["version"]) == (
        "pending",
        None,
        1,
    )


def test_a_write_rolled_back_after_the_related_update_leaves_no_related_update(api: Api) -> None:
    crm(api, pipeline=lead_pipeline())
    api.make_entity(TASK)
    # Runs after activity_follows_up (by name) and fails: a task needs a due time.
    broken = {
        "name": "zz_follow_up_task",
        "label": {"en": "A follow-up task"},
        "entity": "activity",
        "on": ["create"],
        "steps": [{"type": "create_record", "entity": "task", "values": {"title": "subject"}}],
    }
    automate(api, LEAD_ASSIGNED, ACTIVITY_FOLLOWS_UP, broken)
    lead = created(api.post(LEADS, {"company": "Acme"}))
    refused = api.post(ACTIVITIES, {"subject": "Call", "lead": lead["id"], "time": iso(T0)})
    assert refused.status_code == 422, refused.text
    assert errors(refused) == {("task.due", "required")}
    current = ok(api.get(f"{LEADS}/{lead['id']}"))
    assert (current["status"], current["last_follow_up_at"], current["version"]) == (
        "pending",
        None,
        1,
    )
    assert len(history(api, f"{LEADS}/{lead['id']}")) == 1
    assert visits(api, lead["id"]) == ["pending"]
    assert [e for e in events_of(api, "record.updated") if e.record_id == lead["id"]] == []
    assert ok(api.get(f"{V1}/records/task"))["data"] == []


def test_a_create_record_step_creates_through_the_record_service(api: Api) -> None:
    crm(api)
    api.make_entity(TASK)
    automate(
        api,
        {
            "name": "follow_up_task",
            "label": {"en": "A follow-up task"},
            "entity": "activity",
            "on": ["create"],
            "condition": "next_contact_time is not null",
            "steps": [
                {
                    "type": "create_record",
                    "entity": "task",
                    "values": {
                        "title": 'concat("Follow up: ", subject)',
                        "due": "next_contact_time",
                    },
                }
            ],
        },
    )
    created(api.post(ACTIVITIES, {"subject": "Call", "next_contact_time": iso(T0)}))
    created(api.post(ACTIVITIES, {"subject": "Note"}))
    [task] = ok(api.get(f"{V1}/records/task"))["data"]
    assert (task["title"], task["due"]) == ("Follow up: Call", iso(T0))


# ---- SLA due times by priority ---------------------------------------------------------------


def test_sla_due_times_are_set_by_priority_in_the_creating_write(make_api: Any) -> None:
    api: Api = make_api(clock=lambda: T0)
    api.make_entity(TICKET)
    automate(api, TICKET_SLA)
    for priority in PRIORITIES:
        ticket = created(api.post(TICKETS, {"subject": "Down", "priority": priority}))
        response, resolution = SLA_HOURS[priority]
        assert ticket["response_due"] == iso(T0 + timedelta(hours=response))
        assert ticket["resolution_due"] == iso(T0 + timedelta(hours=resolution))
        assert ticket["version"] == 1
        [entry] = history(api, f"{TICKETS}/{ticket['id']}")
        assert entry["changes"]["resolution_due"]["new"] == iso(T0 + timedelta(hours=resolution))
    # A new priority moves the due times, from when the ticket was opened.
    ticket = created(api.post(TICKETS, {"subject": "Slow", "priority": "P4"}))
    raised = ok(api.patch(f"{TICKETS}/{ticket['id']}", {"priority": "P1"}))
    assert raised["resolution_due"] == iso(T0 + timedelta(hours=4))
    same = ok(api.patch(f"{TICKETS}/{ticket['id']}", {"subject": "Slower"}))
    assert same["resolution_due"] == iso(T0 + timedelta(hours=4))


def test_an_automation_value_the_field_cant_take_refuses_the_write_naming_it(api: Api) -> None:
    api.make_entity(TICKET)
    automate(
        api,
        {
            "name": "guess_priority",
            "label": {"en": "Guess the priority"},
            "entity": "ticket",
            "on": ["create"],
            "steps": [{"type": "set_fields", "values": {"priority": "upper(subject)"}}],
        },
    )
    refused = api.post(TICKETS, {"subject": "urgent"})
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert (error["field"], error["code"]) == ("priority", "automation")
    assert "Guess the priority" in error["message"]
    assert created(api.post(TICKETS, {"subject": "p1"}))["priority"] == "P1"


# ---- loops -------------------------------------------------------------------------------------


NODE = {
    "name": "node",
    "label": {"en": "Node"},
    "fields": [
        {"name": "count", "type": "integer", "default": 0},
        {"name": "peer", "type": "lookup", "target": "node"},
    ],
}


def test_automations_that_trigger_each_other_forever_are_stopped_with_a_422(api: Api) -> None:
    api.make_entity(NODE)
    first = created(api.post(f"{V1}/records/node", {}))
    second = created(api.post(f"{V1}/records/node", {"peer": first["id"]}))
    ok(api.patch(f"{V1}/records/node/{first['id']}", {"peer": second["id"]}))
    automate(
        api,
        {
            "name": "ping",
            "label": {"en": "Ping"},
            "entity": "node",
            "on": ["update"],
            "condition": "changed(count)",
            "steps": [
                {"type": "update_related", "lookup": "peer", "values": {"count": "count + 1"}}
            ],
        },
    )
    refused = api.patch(f"{V1}/records/node/{first['id']}", {"count": 1})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert "automations triggered each other more than 8 levels deep" in body["detail"]
    assert body["detail"].count("ping (node ") == 9
    assert {e["code"] for e in body["errors"]} == {"automation_loop"}
    for node in (first, second):
        assert ok(api.get(f"{V1}/records/node/{node['id']}"))["count"] == 0


# ---- the documents ---------------------------------------------------------------------------


def test_automation_documents_are_versioned_metadata(api: Api) -> None:
    crm(api)
    automate(api, LEAD_ASSIGNED)
    [summary] = ok(api.get(AUTOMATIONS))["data"]
    assert summary == {
        "name": "lead_assigned",
        "label": LEAD_ASSIGNED["label"],
        "entity": "lead",
        "on": ["create", "update"],
        "every_minutes": None,
        "active": True,
        "steps": 1,
        "version": 1,
    }
    current = ok(api.get(f"{AUTOMATIONS}/lead_assigned"))
    assert current["version"] == 1
    ok(api.put(f"{AUTOMATIONS}/lead_assigned", {**current, "label": "Assigned → pending"}))
    stale = api.put(f"{AUTOMATIONS}/lead_assigned", {**current, "active": False})
    assert stale.status_code == 412, stale.text
    assert len(ok(api.get(f"{AUTOMATIONS}/lead_assigned/versions"))["data"]) == 2
    assert api.delete(f"{AUTOMATIONS}/lead_assigned").status_code == 204
    assert created(api.post(LEADS, {"company": "Acme"}))["status"] == "unassigned"
    restored = ok(api.post(f"{AUTOMATIONS}/lead_assigned/versions/1/restore"))
    assert restored["label"] == LEAD_ASSIGNED["label"]
    assert created(api.post(LEADS, {"company": "Initech"}))["status"] == "pending"
    rep_token = api.new_user("rep@example.com")
    assert api.get(AUTOMATIONS, headers={"Authorization": f"Bearer {rep_token}"}).status_code == 403


def test_a_bad_automation_is_refused_with_every_problem_at_its_pointer(api: Api) -> None:
    crm(api, pipeline=lead_pipeline())
    response = api.post(
        AUTOMATIONS,
        {
            "name": "broken",
            "label": {"en": "Broken"},
            "entity": "activity",
            "on": ["create"],
            "condition": "subject > 3",
            "steps": [
                {"type": "set_fields", "values": {"ghost": "1", "time": "subject"}},
                {"type": "update_related", "lookup": "subject", "values": {"status": '"x"'}},
                {
                    "type": "update_related",
                    "lookup": "lead",
                    "values": {"stage_entered_at": "now()", "status": '"folowing_up"', "x": "1"},
                },
            ],
        },
    )
    assert response.status_code == 422, response.text
    assert errors(response) == {
        ("/condition", "expression"),
        ("/steps/0/values/ghost", "unknown_field"),
        ("/steps/0/values/time", "expression"),
        ("/steps/1/lookup", "not_lookup"),
        ("/steps/2/values/stage_entered_at", "read_only"),
        ("/steps/2/values/status", "unknown_option"),
        ("/steps/2/values/x", "unknown_field"),
    }
    assert ok(api.get(AUTOMATIONS))["data"] == []


def test_an_entity_change_that_would_break_an_automation_is_refused(api: Api) -> None:
    crm(api)
    automate(api, ACTIVITY_FOLLOWS_UP)
    refused = api.delete(f"{V1}/meta/entities/lead/fields/next_follow_up_at")
    assert refused.status_code == 422, refused.text
    assert (
        "/automations/activity_follows_up/steps/0/values/next_follow_up_at",
        "unknown_field",
    ) in (errors(refused))
    assert "next_follow_up_at" in ok(api.get(f"{V1}/meta/entities/lead"))["fields"][3]["name"]
    # A change the automations don't depend on goes through.
    added = api.post(f"{V1}/meta/entities/lead/fields", {"name": "notes", "type": "text"})
    assert added.status_code == 201, added.text


def test_an_entity_automations_use_can_not_be_deleted(api: Api) -> None:
    crm(api)
    automate(api, LEAD_ASSIGNED, ACTIVITY_FOLLOWS_UP)
    refused = api.delete(f"{V1}/meta/entities/lead")
    assert refused.status_code == 422, refused.text
    found = errors(refused)
    assert ("/automations/lead_assigned/entity", "automation") in found
    assert ("/automations/activity_follows_up/steps/0/lookup", "automation_step") in found
    assert ("/automations/activity_follows_up/steps/0/values/status", "reads_through") in found


def test_the_automation_answers_match_the_openapi_document(api: Api) -> None:
    crm(api)
    automate(api, LEAD_ASSIGNED)
    document = document_of(api)
    assert {"Automation", "AutomationSummary", "AutomationStep"} <= set(
        document["components"]["schemas"]
    )
    conforms(document, AUTOMATIONS, "get", api.get(AUTOMATIONS))
    conforms(document, f"{AUTOMATIONS}/{{name}}", "get", api.get(f"{AUTOMATIONS}/lead_assigned"))
    schedule = {**SCHEDULE_EXAMPLE, "name": "stale_leads"}
    conforms(document, AUTOMATIONS, "post", api.post(AUTOMATIONS, schedule))


SCHEDULE_EXAMPLE = {
    "name": "example",
    "label": {"en": "Leads not followed up for a week are flagged"},
    "entity": "lead",
    "every_minutes": 60,
    "condition": 'status == "pending" and created_at < add_hours(now(), -168)',
    "steps": [{"type": "set_fields", "values": {"status": '"following_up"'}}],
}
