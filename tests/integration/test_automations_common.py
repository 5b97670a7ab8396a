"""The CRM shapes the automation tests build on: leads with a status pipeline, customers,
activities about either, and tickets with SLA fields; and the automation documents that make
the CRM's behaviour happen by itself — written here as an admin would, not built in."""

from __future__ import annotations

import copy
from typing import Any

from conftest import Api
from sqlalchemy import select

from metacrm.platform.db import reading
from metacrm.platform.systables import events

V1 = "/api/v1"
AUTOMATIONS = f"{V1}/meta/automations"
LEADS, CUSTOMERS, ACTIVITIES = (f"{V1}/records/{n}" for n in ("lead", "customer", "activity"))
TICKETS = f"{V1}/records/ticket"

LEAD_STATUSES = ("unassigned", "pending", "following_up", "converted", "invalid", "voided")
LEAD = {
    "name": "lead",
    "label": {"en": "Lead", "zh-CN": "线索"},
    "title_field": "company",
    "fields": [
        {"name": "company", "type": "text", "required": True},
        {
            "name": "status",
            "type": "picklist",
            "default": "unassigned",
            "options": [{"value": s} for s in LEAD_STATUSES],
        },
        {"name": "last_follow_up_at", "type": "datetime"},
        {"name": "next_follow_up_at", "type": "datetime"},
    ],
}
CUSTOMER = {
    "name": "customer",
    "label": {"en": "Customer"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "last_follow_up_at", "type": "datetime"},
        {"name": "next_follow_up_at", "type": "datetime"},
    ],
}
ACTIVITY = {
    "name": "activity",
    "label": {"en": "Activity", "zh-CN": "跟进记录"},
    "title_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "required": True},
        {"name": "time", "type": "datetime"},
        {"name": "next_contact_time", "type": "datetime"},
        {"name": "lead", "type": "lookup", "target": "lead"},
        {"name": "customer", "type": "lookup", "target": "customer"},
    ],
}
# A follow-up task an automation may create; `due` is required.
TASK = {
    "name": "task",
    "label": {"en": "Task"},
    "fields": [
        {"name": "title", "type": "text", "required": True},
        {"name": "due", "type": "datetime", "required": True},
    ],
}


def lead_pipeline(following_up_gate: str = "last_follow_up_at is not null") -> dict[str, Any]:
    categories = {"converted": "won", "invalid": "lost", "voided": "lost"}
    stages = [
        {
            "key": key,
            "label": {"en": key.replace("_", " ").capitalize()},
            "category": categories.get(key, "open"),
            "probability": 0,
        }
        for key in LEAD_STATUSES
    ]
    stages[2]["entry_condition"] = following_up_gate
    return {
        "name": "lead_status",
        "label": {"en": "Lead status"},
        "entity": "lead",
        "field": "status",
        "stages": stages,
    }


# Giving a lead an owner makes it pending: on create (every new lead has one) and when an
# unassigned lead is given one.
LEAD_ASSIGNED = {
    "name": "lead_assigned",
    "label": {"en": "An assigned lead is pending", "zh-CN": "分配后待处理"},
    "entity": "lead",
    "on": ["create", "update"],
    "condition": 'status == "unassigned" and owner is not null '
    "and (old.owner is null or changed(owner))",
    "steps": [{"type": "set_fields", "values": {"status": '"pending"'}}],
}
# An activity sets its parent's last follow-up time (and the next one when given); the first
# one moves a pending lead to following up.
FOLLOW_UP_VALUES = {
    "last_follow_up_at": "coalesce(time, now())",
    "next_follow_up_at": "coalesce(next_contact_time, {parent}.next_follow_up_at)",
}
ACTIVITY_FOLLOWS_UP = {
    "name": "activity_follows_up",
    "label": {"en": "An activity follows its parent up"},
    "entity": "activity",
    "on": ["create"],
    "steps": [
        {
            "type": "update_related",
            "lookup": "lead",
            "values": {
                **{k: v.format(parent="lead") for k, v in FOLLOW_UP_VALUES.items()},
                "status": 'if(lead.status == "pending", "following_up", lead.status)',
            },
        },
        {
            "type": "update_related",
            "lookup": "customer",
            "values": {k: v.format(parent="customer") for k, v in FOLLOW_UP_VALUES.items()},
        },
    ],
}

PRIORITIES = ("P1", "P2", "P3", "P4")
TICKET = {
    "name": "ticket",
    "label": {"en": "Ticket", "zh-CN": "服务工单"},
    "title_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "required": True},
        {"name": "priority", "type": "picklist", "options": [{"value": p} for p in PRIORITIES]},
        {
            "name": "status",
            "type": "picklist",
            "default": "new",
            "options": [{"value": s} for s in ("new", "in_progress", "resolved", "closed")],
        },
        {"name": "response_due", "type": "datetime"},
        {"name": "resolution_due", "type": "datetime"},
        {"name": "sla_breached", "type": "boolean", "default": False},
    ],
    # A ticket marked frozen refuses the breach flag: the job must skip it, not stop.
    "validation_rules": [
        {
            "name": "frozen",
            "condition": 'subject != "frozen"',
            "when": "changed(sla_breached)",
            "message": {"en": "a frozen ticket keeps its flags"},
        }
    ],
}
# Hours per priority: first response, resolution.
SLA_HOURS = {"P1": (1, 4), "P2": (4, 24), "P3": (8, 48), "P4": (24, 72)}


def _hours(index: int) -> str:
    """The target for the ticket's priority, as nested if()s an admin can edit."""
    text = str(SLA_HOURS["P4"][index])
    for priority in ("P3", "P2", "P1"):
        text = f'if(priority == "{priority}", {SLA_HOURS[priority][index]}, {text})'
    return text


TICKET_SLA = {
    "name": "ticket_sla",
    "label": {"en": "SLA due times by priority"},
    "entity": "ticket",
    "on": ["create", "update"],
    "condition": "old.id is null or changed(priority)",
    "steps": [
        {
            "type": "set_fields",
            "values": {
                "response_due": f"add_hours(created_at, {_hours(0)})",
                "resolution_due": f"add_hours(created_at, {_hours(1)})",
            },
        }
    ],
}
SLA_BREACH = {
    "name": "sla_breach",
    "label": {"en": "Flag tickets past their resolution time"},
    "entity": "ticket",
    "every_minutes": 5,
    "condition": 'not sla_breached and status not in ["resolved", "closed"] '
    "and resolution_due < now()",
    "steps": [{"type": "set_fields", "values": {"sla_breached": "true"}}],
    "event": "ticket.sla_breached",
}


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def automate(api: Api, *documents: dict[str, Any]) -> None:
    for document in documents:
        created(api.post(AUTOMATIONS, copy.deepcopy(document)))


def crm(api: Api, *, pipeline: dict[str, Any] | None = None) -> None:
    for entity in (LEAD, CUSTOMER, ACTIVITY):
        api.make_entity(entity)
    if pipeline is not None:
        created(api.post(f"{V1}/meta/pipelines", pipeline))


def errors(response: Any) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in response.json().get("errors", [])}


def history(api: Api, path: str) -> list[dict[str, Any]]:
    """Oldest first."""
    return list(reversed(ok(api.get(f"{path}/history"))["data"]))


def events_of(api: Api, type_: str) -> list[Any]:
    with reading(api.engine) as conn:
        return list(
            conn.execute(select(events).where(events.c.type == type_).order_by(events.c.id))
        )
