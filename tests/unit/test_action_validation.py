"""Record action documents, checked without a database: the validator finds every problem at its
JSON Pointer, an input schema gives `input.<key>` its types, and the rule language reads the
input typed — in Python only, never in SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from metacrm.metadata.actions import (
    ActionDef,
    References,
    document_key,
    input_schema_errors,
    input_types,
    validate_action,
)
from metacrm.metadata.approvals import ApprovalProcessDef
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import PipelineDef
from metacrm.platform.errors import RuleError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker
from metacrm.runtime.rules import Env, Scope, check, compile_python, parse, sql_compatible

LEAD = EntityDef.from_doc(
    {
        "name": "lead",
        "label": {"en": "Lead"},
        "fields": [
            {"name": "company", "type": "text"},
            {
                "name": "status",
                "type": "picklist",
                "options": [{"value": v} for v in ("new", "pending", "converted")],
            },
            {"name": "score", "type": "integer"},
            {"name": "due", "type": "date"},
            {"name": "number", "type": "autonumber", "pattern": "L-{seq:4}"},
            {"name": "locked", "type": "text", "read_only": True},
            {"name": "twice", "type": "formula", "result_type": "integer", "expression": "score"},
        ],
    }
)
NOTE = EntityDef.from_doc(
    {
        "name": "note",
        "label": {"en": "Note"},
        "fields": [
            {"name": "text", "type": "text"},
            {"name": "lead", "type": "lookup", "target": "lead"},
        ],
    }
)
ENTITIES = {"lead": LEAD, "note": NOTE}
PIPELINE = PipelineDef.from_doc(
    {
        "name": "lead_status",
        "label": {"en": "Status"},
        "entity": "lead",
        "field": "status",
        "stages": [
            {"key": k, "label": {"en": k}, "category": "open", "probability": 0}
            for k in ("new", "pending", "converted")
        ],
    }
)
PROCESS = ApprovalProcessDef.from_doc(
    {"name": "check", "label": {"en": "Check"}, "entity": "lead", "steps": []}
)
REFS = References(
    ENTITIES,
    {"lead_status": PIPELINE},
    {"check": PROCESS},
    ("crm.convert",),
    expression_checker(Catalog(stamp=0, entities=ENTITIES)),
)
INPUT = {
    "type": "object",
    "properties": {
        "reason": {"type": "string"},
        "points": {"type": "integer"},
        "weight": {"type": ["number", "null"]},
        "on": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "urgent": {"type": "boolean"},
        "kind": {"enum": ["a", "b"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "contact": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}


def action(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "assign",
        "label": {"en": "Assign", "zh-CN": "分配"},
        "entity": "lead",
        "permission": "transfer",
        "input_schema": INPUT,
        "steps": [{"type": "set_fields", "values": {"company": "input.reason"}}],
    }
    base.update(changes)
    return base


def pointers(document: Any) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in validate_action(document, REFS)}


def test_a_valid_action_of_every_step_has_no_errors() -> None:
    steps = [
        {
            "type": "set_fields",
            "values": {
                "owner": "input.reason",
                "score": "input.points + score",
                "due": "add_days(input.on, 3)",
                "company": 'if(input.urgent, upper(input.contact.name), "x")',
                "locked": "null",
            }
            | {"status": "input.kind"},
        },
        {"type": "move_stage", "stage": "pending"},
        {"type": "create_record", "entity": "note", "values": {"lead": "id", "text": "company"}},
        {"type": "submit_approval", "process": "check"},
        {"type": "hook", "name": "crm.convert"},
    ]
    doc = action(steps=steps, condition='status != "converted" and owner == $user.id')
    doc["unavailable_message"] = {"en": "Already converted"}
    found = pointers(doc)
    # Only the read-only field is refused: null would clear it, but it can't be written.
    assert found == {("/steps/0/values/locked", "read_only")}
    del steps[0]["values"]["locked"]
    assert pointers(doc) == set()
    assert document_key(doc) == "lead.assign"


def test_every_problem_of_a_broken_action_is_reported_at_once() -> None:
    doc = action(
        name="Bad Name",
        permission="launch",
        condition="score",
        steps=[
            {"type": "set_fields", "values": {"twice": "1", "number": '"x"', "ghost": "1"}},
            {"type": "move_stage", "pipeline": "other", "stage": "new"},
            {"type": "move_stage", "stage": "lost"},
            {"type": "create_record", "entity": "lead", "values": {"score": "input.reason"}},
            {"type": "submit_approval", "process": "unknown"},
            {"type": "hook", "name": "crm.unknown"},
            {"type": "hook"},
            {"type": "set_fields", "values": {"score": "input.tags"}},
            {"type": "set_fields", "values": {"score": "input.contact"}},
        ],
    )
    assert pointers(doc) == {
        ("/name", "pattern"),
        ("/permission", "enum"),
        ("/steps/6", "required"),
        ("/condition", "expression"),
        ("/steps/0/values/twice", "read_only"),
        ("/steps/0/values/number", "read_only"),
        ("/steps/0/values/ghost", "unknown_field"),
        ("/steps/1/pipeline", "unknown_pipeline"),
        ("/steps/2/stage", "unknown_stage"),
        ("/steps/3/values/score", "expression"),
        ("/steps/4/process", "unknown_process"),
        ("/steps/5/name", "unknown_hook"),
        ("/steps/7/values/score", "expression"),
        ("/steps/8/values/score", "expression"),
    }


def test_an_unknown_entity_stops_the_checks_that_need_it() -> None:
    assert pointers(action(entity="ghost")) == {("/entity", "unknown_entity")}


def test_a_move_without_a_pipeline_needs_the_entity_to_have_exactly_one() -> None:
    refs = References(ENTITIES, {}, {}, (), None)
    doc = action(steps=[{"type": "move_stage", "stage": "new"}])
    errors = validate_action(doc, refs)
    assert [(e.field, e.code) for e in errors] == [("/steps/0/pipeline", "pipeline")]
    assert "no pipeline" in errors[0].message
    second = PipelineDef.from_doc({**PIPELINE.doc, "name": "again"})
    two = References(ENTITIES, {"lead_status": PIPELINE, "again": second}, {}, (), None)
    [error] = validate_action(doc, two)
    assert "again, lead_status" in error.message


def test_input_types_follow_the_json_types_and_formats() -> None:
    assert input_types(INPUT) == {
        ("reason",): "text",
        ("points",): "integer",
        ("weight",): "decimal",
        ("on",): "date",
        ("at",): "datetime",
        ("urgent",): "boolean",
        ("kind",): "text",
        ("tags",): None,
        ("contact", "name"): "text",
    }
    assert input_types({"type": "object"}) == {}


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ("text", ""),
        ({"type": "array", "items": {"type": "string"}}, "/type"),
        ({"type": "object", "properties": {"a": {"type": "wrong"}}}, "/properties/a/type"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "/properties/a/$ref"),
        ({"type": "object", "$defs": {}}, "/$defs"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "/properties/a"),
        ({"type": "object", "properties": {"a/b": {"type": "object"}}}, "/properties/a~1b"),
    ],
)
def test_an_input_schema_a_client_cant_be_made_from_is_refused_at_its_place(
    schema: Any, where: str
) -> None:
    found = [e.field for e in input_schema_errors(schema)]
    assert f"/input_schema{where}" in found, found


def test_a_plain_input_schema_is_accepted() -> None:
    assert input_schema_errors(INPUT) == []
    assert input_schema_errors({"type": "object", "additionalProperties": False}) == []


# ---- input.<key> in the rule language -----------------------------------------------------------

TYPES = ActionDef.from_doc(action()).input_types


def typed(text: str) -> Any:
    return check(parse(text), Scope(LEAD, ENTITIES.get, inputs=TYPES))


def test_input_keys_are_typed_by_the_input_schema() -> None:
    assert typed("input.points + 1").vtype == "integer"
    assert typed("input.on").vtype == "date"
    assert typed("input.contact.name").vtype == "text"
    assert typed("input.weight * 2").vtype == "decimal"
    with pytest.raises(RuleError, match="must give integer, but it gives text"):
        check(parse("input.reason"), Scope(LEAD, ENTITIES.get, inputs=TYPES), expect="integer")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("input.reasn", "did you mean input.reason"),
        ("input.contact", "is an object"),
        ("input.tags", "no value the rule language can use"),
        ("input", "name a key of the action's input"),
    ],
)
def test_reading_input_the_schema_does_not_offer_says_what_it_has(text: str, said: str) -> None:
    with pytest.raises(RuleError, match=said):
        typed(text)


def test_without_an_input_in_scope_input_is_an_ordinary_unknown_field() -> None:
    with pytest.raises(RuleError, match="unknown field 'input'"):
        check(parse("input.reason"), Scope(LEAD, ENTITIES.get))


def test_input_values_are_read_in_python_and_never_in_sql() -> None:
    checked = typed("add_days(input.on, input.points)")
    env = Env(
        record={},
        user={},
        now=datetime(2030, 1, 1, tzinfo=UTC),
        input={"on": date(2030, 1, 30), "points": 3},
    )
    assert compile_python(checked)(env) == date(2030, 2, 2)
    assert compile_python(typed("input.weight * 2"))(
        Env(record={}, user={}, now=env.now, input={"weight": 1.25})
    ) == Decimal("2.50")
    assert (
        compile_python(typed("input.contact.name"))(Env(record={}, user={}, now=env.now, input={}))
        is None
    )
    assert sql_compatible(typed("input.on")) == "input.on is only known while an action runs"
    assert sql_compatible(checked) is not None
