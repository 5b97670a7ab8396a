"""The automation validator: every problem at once, each at its JSON Pointer — when it runs,
which fields its steps may write (derived and computed ones not), expressions of the right type
over the right entity, update_related against the target's fields, and a scheduled condition
that compiles to SQL and that its own steps can make false."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metacrm.metadata.automations import AutomationDef, validate_automation
from metacrm.metadata.model import EntityDef
from metacrm.runtime.automations.design import automation_checks, field_reader
from metacrm.runtime.catalog import Catalog

LEAD = EntityDef.from_doc(
    {
        "name": "lead",
        "fields": [
            {"name": "company", "type": "text", "required": True},
            {
                "name": "status",
                "type": "picklist",
                "options": [{"value": "pending"}, {"value": "following_up"}],
            },
            {"name": "score", "type": "integer"},
            {"name": "last_follow_up_at", "type": "datetime"},
            {"name": "stage_entered_at", "type": "datetime", "read_only": True},
            {"name": "number", "type": "autonumber", "pattern": "L-{seq:4}"},
            {
                "name": "hot",
                "type": "formula",
                "result_type": "boolean",
                "expression": "score > 50",
            },
            {"name": "flagged", "type": "boolean"},
        ],
    }
)
ACTIVITY = EntityDef.from_doc(
    {
        "name": "activity",
        "fields": [
            {"name": "subject", "type": "text"},
            {"name": "time", "type": "datetime"},
            {"name": "lead", "type": "lookup", "target": "lead"},
        ],
    }
)
CATALOG = Catalog(0, {"lead": LEAD, "activity": ACTIVITY})
CHECKS = automation_checks(CATALOG)

TRIGGERED: dict[str, Any] = {
    "name": "follow_up",
    "label": {"en": "Follow up"},
    "entity": "activity",
    "on": ["create"],
    "condition": "lead is not null and not changed(subject)",
    "steps": [
        {"type": "set_fields", "values": {"time": "coalesce(time, now())"}},
        {
            "type": "update_related",
            "lookup": "lead",
            "values": {
                "last_follow_up_at": "time",
                "status": 'if(lead.status == "pending", "following_up", lead.status)',
                "owner": "lead.owner",
            },
        },
        {"type": "create_record", "entity": "lead", "values": {"company": "subject"}},
    ],
}
SCHEDULED: dict[str, Any] = {
    "name": "flag",
    "label": {"en": "Flag"},
    "entity": "lead",
    "every_minutes": 15,
    "condition": "not coalesce(flagged, false) and last_follow_up_at < add_hours(now(), -48)",
    "steps": [{"type": "set_fields", "values": {"flagged": "true"}}],
    "event": "lead.flagged",
}


def problems(doc: Any) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in validate_automation(doc, CHECKS)}


def test_valid_documents_have_no_problem() -> None:
    assert problems(TRIGGERED) == set()
    assert problems(SCHEDULED) == set()
    assert problems({**TRIGGERED, "label": "A plain label"}) == {("/label", "type")}


def test_what_a_valid_document_means() -> None:
    triggered, scheduled = AutomationDef.from_doc(TRIGGERED), AutomationDef.from_doc(SCHEDULED)
    assert triggered.runs_on("create") and not triggered.runs_on("update")
    assert triggered.acts_after_write and not triggered.scheduled
    assert scheduled.scheduled and scheduled.every_minutes == 15
    assert not scheduled.runs_on("update") and not scheduled.acts_after_write
    assert not AutomationDef.from_doc({**TRIGGERED, "active": False}).runs_on("create")


def test_steps_may_write_only_stored_writable_fields_of_their_target() -> None:
    doc = copy.deepcopy(TRIGGERED)
    doc["steps"][0]["values"] = {
        "ghost": "1",
        "lead": '"x"',
        "created_at": "now()",
    }
    doc["steps"][1]["values"] = {
        "stage_entered_at": "now()",
        "number": '"L-1"',
        "hot": "true",
        "subject": '"x"',
        "score": "subject",
        "status": '"folowing_up"',
    }
    assert problems(doc) == {
        ("/steps/0/values/ghost", "unknown_field"),
        ("/steps/0/values/created_at", "read_only"),
        ("/steps/1/values/stage_entered_at", "read_only"),
        ("/steps/1/values/number", "read_only"),
        ("/steps/1/values/hot", "read_only"),
        ("/steps/1/values/subject", "unknown_field"),
        ("/steps/1/values/score", "expression"),
        ("/steps/1/values/status", "unknown_option"),
    }


def test_update_related_needs_a_lookup_and_reads_over_this_record() -> None:
    doc = copy.deepcopy(TRIGGERED)
    doc["steps"][1]["lookup"] = "subject"
    doc["steps"][2]["entity"] = "ghost"
    # `company` is the target's field, not the activity's: values are computed over the
    # activity and read the lead through the lookup.
    doc["steps"].append(
        {"type": "update_related", "lookup": "lead", "values": {"company": "company"}}
    )
    assert problems(doc) == {
        ("/steps/1/lookup", "not_lookup"),
        ("/steps/2/entity", "unknown_entity"),
        ("/steps/3/values/company", "expression"),
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"on": None}, {("/on", "required")}),
        ({"every_minutes": 5}, {("/every_minutes", "both")}),
        ({"event": "activity.done"}, {("/event", "unused")}),
        ({"condition": "subject"}, {("/condition", "expression")}),
        ({"on": ["delete"]}, {("/on/0", "enum")}),
        ({"entity": "ghost"}, {("/entity", "unknown_entity")}),
    ],
)
def test_when_a_triggered_automation_runs(change: dict[str, Any], expected: set[Any]) -> None:
    doc = {k: v for k, v in {**TRIGGERED, **change}.items() if v is not None}
    assert problems(doc) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"condition": None}, {("/condition", "required")}),
        ({"condition": "changed(score)"}, {("/condition", "expression")}),
        ({"event": "record.updated"}, {("/event", "reserved")}),
        ({"event": "Flagged!"}, {("/event", "pattern")}),
        ({"every_minutes": 0}, {("/every_minutes", "minimum")}),
        (
            {"steps": [{"type": "update_related", "lookup": "lead", "values": {"score": "1"}}]},
            {("/steps/0/type", "scheduled_step")},
        ),
        # The steps set no field the condition reads: it would match the same records forever.
        ({"condition": "last_follow_up_at < now()"}, {("/condition", "not_idempotent")}),
    ],
)
def test_what_a_scheduled_automation_may_be(change: dict[str, Any], expected: set[Any]) -> None:
    doc = {k: v for k, v in {**SCHEDULED, **change}.items() if v is not None}
    assert problems(doc) == expected


def test_a_scheduled_condition_must_compile_to_sql() -> None:
    # A formula of a looked-up record is computed in Python only.
    doc = {
        **SCHEDULED,
        "entity": "activity",
        "condition": "lead.hot and subject != 'done'",
        "steps": [{"type": "set_fields", "values": {"subject": "'done'"}}],
    }
    assert problems(doc) == {("/condition", "not_sql")}


def test_schema_errors_and_errors_of_meaning_come_together() -> None:
    doc = copy.deepcopy(TRIGGERED)
    del doc["label"]
    doc["steps"][0]["values"]["ghost"] = "1"
    doc["steps"].append({"type": "launch_rocket"})
    assert problems(doc) == {
        ("", "required"),
        ("/steps/0/values/ghost", "unknown_field"),
        ("/steps/3/type", "enum"),
    }


def test_the_field_reader_names_the_fields_a_condition_reads() -> None:
    reads = field_reader(CATALOG)
    assert reads(ACTIVITY.doc, "lead.status == 'x' and subject != 'y' and time < now()") == {
        "lead",
        "subject",
        "time",
    }
    assert reads(LEAD.doc, "hot") is None  # a formula may read anything
    assert reads(LEAD.doc, "score >") is None
