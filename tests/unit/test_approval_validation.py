"""The approval process validator: every problem at once, each at its JSON Pointer; and what a
valid document means (`ApprovalProcessDef`, `StepDef`)."""

from __future__ import annotations

import copy
from typing import Any

from metacrm.metadata.approvals import (
    ApprovalProcessDef,
    References,
    validate_approval_process,
)
from metacrm.metadata.model import EntityDef
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker

DEAL = EntityDef.from_doc(
    {
        "name": "deal",
        "label": {"en": "Deal"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "discount", "type": "integer"},
            {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
            {
                "name": "stage",
                "type": "picklist",
                "options": [{"value": "open"}, {"value": "won"}],
            },
            {"name": "reviewer", "type": "user"},
            {"name": "number", "type": "autonumber", "pattern": "D-{seq:4}"},
            {"name": "approved", "type": "boolean"},
        ],
    }
)
ENTITIES = {"deal": DEAL}
USERS = {"u1", "u2"}
REFS = References(
    ENTITIES,
    {"director", "rep"},
    USERS.__contains__,
    expression_checker(Catalog(0, dict(ENTITIES))),
)

VALID: dict[str, Any] = {
    "name": "discount_approval",
    "label": {"en": "Discount approval"},
    "entity": "deal",
    "entry_condition": "discount > 0",
    "trigger": "auto",
    "auto_condition": "discount > 20",
    "submitters": ["rep"],
    "lock": {"approver_may_edit": True},
    "steps": [
        {
            "name": "manager",
            "label": {"en": "Manager"},
            "approvers": [{"type": "manager", "levels": 1}],
            "sla_hours": 4,
        },
        {
            "name": "board",
            "label": {"en": "Board"},
            "condition": "discount > 40",
            "approvers": [
                {"type": "role", "role": "director"},
                {"type": "user", "users": ["u1"]},
                {"type": "field", "field": "reviewer"},
                {"type": "field", "field": "owner"},
                {"type": "org_unit_head"},
            ],
            "mode": "quorum",
            "quorum": 2,
            "escalate_after_hours": 24,
            "on_reject": [{"type": "set_field", "field": "discount", "expression": "20"}],
        },
    ],
    "on_approve": [
        {"type": "move_stage", "field": "stage", "stage": "won"},
        {"type": "set_field", "field": "approved", "expression": "true"},
        {
            "type": "notify",
            "to": ["submitter", "owner", "approvers", {"user": "u2"}, {"role": "director"}],
            "message": {"en": "Approved"},
        },
    ],
}


def errors_of(doc: Any) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in validate_approval_process(doc, REFS)}


def test_a_complete_process_is_valid_and_reads_back() -> None:
    assert errors_of(VALID) == set()
    process = ApprovalProcessDef.from_doc(VALID, 3)
    assert (process.name, process.entity, process.version) == ("discount_approval", "deal", 3)
    assert process.trigger == "auto" and process.approver_may_edit
    first, second = process.steps
    assert (first.mode, first.sla_hours, first.escalate_after_hours) == ("any", 4, 8.0)
    assert (second.mode, second.quorum, second.escalate_after_hours) == ("quorum", 2, 24.0)
    assert [a["type"] for a in process.actions("on_approve")] == [
        "move_stage",
        "set_field",
        "notify",
    ]


def test_schema_problems_are_reported_with_pointers() -> None:
    doc = copy.deepcopy(VALID)
    doc["label"] = {"fr": "x"}
    doc["steps"][0]["mode"] = "majority"
    doc["steps"][1]["approvers"][0] = {"type": "role"}
    found = errors_of(doc)
    assert ("/label", "required") in found
    assert ("/steps/0/mode", "enum") in found
    assert ("/steps/1/approvers/0", "oneOf") in found


def test_a_process_needs_at_least_one_step() -> None:
    assert ("/steps", "minItems") in errors_of({**VALID, "steps": []})


def test_every_meaning_problem_is_reported_at_once() -> None:
    doc = copy.deepcopy(VALID)
    doc["entry_condition"] = "discount + 1"
    doc["auto_condition"] = "nope > 1"
    doc["submitters"] = ["rep", "ghost"]
    manager, board = doc["steps"]
    manager["mode"] = "all"
    manager["quorum"] = 2
    board["name"] = "manager"
    board["mode"] = "quorum"
    del board["quorum"]
    board["condition"] = "name"
    board["approvers"] = [
        {"type": "role", "role": "nobody"},
        {"type": "user", "users": ["u1", "u9"]},
        {"type": "field", "field": "name"},
        {"type": "field", "field": "missing"},
    ]
    board["on_reject"] = [{"type": "set_field", "field": "discount", "expression": '"text"'}]
    doc["on_approve"] = [
        {"type": "move_stage", "field": "stage", "stage": "lost"},
        {"type": "move_stage", "field": "name", "stage": "won"},
        {"type": "set_field", "field": "number", "expression": '"x"'},
        {"type": "set_field", "field": "created_at", "expression": "now()"},
        {"type": "set_field", "field": "ghost", "expression": "1"},
        {"type": "notify", "to": [{"user": "u7"}, {"role": "ghost"}], "message": {"en": "x"}},
    ]
    assert errors_of(doc) == {
        ("/entry_condition", "expression"),
        ("/auto_condition", "expression"),
        ("/submitters/1", "unknown_role"),
        ("/steps/0/quorum", "unused"),
        ("/steps/1/name", "duplicate"),
        ("/steps/1/quorum", "required"),
        ("/steps/1/condition", "expression"),
        ("/steps/1/approvers/0/role", "unknown_role"),
        ("/steps/1/approvers/1/users/1", "unknown_user"),
        ("/steps/1/approvers/2/field", "not_user_field"),
        ("/steps/1/approvers/3/field", "not_user_field"),
        ("/steps/1/on_reject/0/expression", "expression"),
        ("/on_approve/0/stage", "unknown_option"),
        ("/on_approve/1/field", "not_picklist"),
        ("/on_approve/2/field", "read_only"),
        ("/on_approve/3/field", "read_only"),
        ("/on_approve/4/field", "unknown_field"),
        ("/on_approve/5/to/0/user", "unknown_user"),
        ("/on_approve/5/to/1/role", "unknown_role"),
    }


def test_an_auto_trigger_needs_its_condition_and_a_manual_one_refuses_it() -> None:
    auto = {k: v for k, v in VALID.items() if k != "auto_condition"}
    assert errors_of(auto) == {("/auto_condition", "required")}
    manual = {**VALID, "trigger": "manual"}
    assert errors_of(manual) == {("/auto_condition", "unused")}


def test_an_unknown_entity_stops_the_meaning_checks() -> None:
    assert errors_of({**VALID, "entity": "ghost"}) == {("/entity", "unknown_entity")}


def test_nul_characters_are_refused() -> None:
    doc = copy.deepcopy(VALID)
    doc["steps"][0]["label"] = {"en": "bad\x00"}
    assert errors_of(doc) == {("/steps/0/label/en", "format")}
