"""Every problem at once: a schema error in one part of a metadata document does not hide the
errors of meaning in the others (entities, roles, pipelines, approval processes), and no
document, however broken, makes a validator raise."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metacrm.metadata.approvals import References, validate_approval_process
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import validate_pipeline
from metacrm.metadata.roles import validate_role
from metacrm.metadata.validate import schema_errors, validate_entity
from metacrm.platform.errors import FieldError
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker

DEAL = EntityDef.from_doc(
    {
        "name": "deal",
        "label": {"en": "Deal"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
            {"name": "stage", "type": "picklist", "options": [{"value": "open"}]},
            {"name": "reviewer", "type": "user"},
        ],
    }
)
ENTITIES = {"deal": DEAL}
CHECK = expression_checker(Catalog(0, dict(ENTITIES)))
REFS = References(ENTITIES, {"director"}, {"u1"}.__contains__, CHECK)


def places(errors: list[FieldError]) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in errors}


def entity() -> dict[str, Any]:
    return {
        "name": "order",
        "label": {"en": "Order"},
        "title_field": "name",
        "fields": [
            {"name": "name", "type": "text", "label": {"en": "Name"}},
            {"name": "total", "type": "integer", "min": 0},
            {"name": "status", "type": "picklist", "options": [{"value": "new"}]},
            {"name": "deal", "type": "lookup", "target": "deal"},
        ],
        "validation_rules": [
            {"name": "positive", "condition": "total > 0", "message": {"en": "Positive"}}
        ],
    }


def role() -> dict[str, Any]:
    return {
        "name": "rep",
        "label": {"en": "Rep"},
        "entities": {
            "deal": {
                "actions": {"read": "own"},
                "record_rules": [{"name": "big", "condition": "amount > 5", "effect": "narrow"}],
                "fields": {"amount": {"access": "read_only"}},
            }
        },
    }


def pipeline() -> dict[str, Any]:
    return {
        "name": "sales",
        "label": {"en": "Sales"},
        "entity": "deal",
        "field": "stage",
        "stages": [
            {"key": "open", "label": {"en": "Open"}, "category": "open", "probability": 10},
            {"key": "won", "label": {"en": "Won"}, "category": "won", "probability": 100},
        ],
    }


def process() -> dict[str, Any]:
    return {
        "name": "check",
        "label": {"en": "Check"},
        "entity": "deal",
        "entry_condition": "amount > 0",
        "steps": [
            {
                "name": "boss",
                "label": {"en": "Boss"},
                "approvers": [{"type": "role", "role": "director"}],
            }
        ],
        "on_approve": [{"type": "set_field", "field": "amount", "expression": "1"}],
    }


def test_the_documents_used_here_are_valid() -> None:
    assert validate_entity(entity(), {"deal"}, CHECK) == []
    assert validate_role(role(), ENTITIES, CHECK) == []
    assert validate_pipeline(pipeline(), ENTITIES, {}, CHECK) == []
    assert validate_approval_process(process(), REFS) == []


def test_an_entity_reports_schema_errors_and_errors_of_meaning_together() -> None:
    doc = entity()
    doc["label"] = {"en": ""}  # schema
    doc["colour"] = "blue"  # schema
    doc["title_field"] = "subject"  # meaning
    doc["fields"][0]["label"] = {"EN": "Name"}  # schema, in display text only
    doc["fields"][1]["max"] = -1  # meaning: min above max
    doc["fields"][2]["default"] = "closed"  # meaning: not an option
    doc["fields"][2]["options"][0]["label"] = 5  # schema, in display text only
    doc["fields"][3]["target"] = "nowhere"  # meaning
    doc["validation_rules"] = [
        {"name": "positive", "condition": "total >", "message": 7},  # schema + expression
        {"name": "positive", "condition": "true", "message": {"en": "x"}, "field": "nope"},
    ]
    found = places(validate_entity(doc, {"deal"}, CHECK))
    assert found == {
        ("/label/en", "minLength"),
        ("", "additionalProperties"),
        ("/title_field", "unknown_field"),
        ("/fields/0/label", "required"),
        ("/fields/0/label", "pattern"),
        ("/fields/1/min", "range"),
        ("/fields/2/default", "default"),
        ("/fields/2/options/0/label", "type"),
        ("/fields/3/target", "unknown_entity"),
        ("/validation_rules/0/message", "type"),
        ("/validation_rules/1/name", "duplicate"),
        ("/validation_rules/1/field", "unknown_field"),
    }


def test_entity_expressions_are_checked_despite_schema_errors_elsewhere() -> None:
    doc = entity()
    doc["label"] = {"en": ""}
    doc["validation_rules"][0]["condition"] = "total >"
    doc["validation_rules"][0]["message"] = 7
    assert places(validate_entity(doc, {"deal"}, CHECK)) == {
        ("/label/en", "minLength"),
        ("/validation_rules/0/message", "type"),
        ("/validation_rules/0/condition", "expression"),
    }


def test_entity_expressions_wait_for_fields_whose_names_or_types_are_wrong() -> None:
    # With a field's type unknown, an expression naming it can't be judged: say nothing of it.
    doc = entity()
    doc["fields"][1]["type"] = 7
    doc["validation_rules"][0]["condition"] = "total >"
    assert places(validate_entity(doc, {"deal"}, CHECK)) == {("/fields/1/type", "type")}


def test_a_broken_part_of_a_field_hides_only_what_depends_on_it() -> None:
    doc = entity()
    # A lookup without a valid target: the schema says why, the meaning check says no more;
    # the field's other problems are still found.
    doc["fields"][3]["target"] = "Not A Name"
    doc["fields"][3]["unique"] = "yes"
    doc["fields"][3]["default"] = 5
    assert places(validate_entity(doc, {"deal"}, CHECK)) == {
        ("/fields/3/target", "pattern"),
        ("/fields/3/unique", "type"),
        ("/fields/3/default", "default"),
    }
    # A broken precision leaves the default and bounds unjudged (they depend on it).
    doc = entity()
    doc["fields"][1] = {"name": "total", "type": "decimal", "precision": 99, "default": "x"}
    assert places(validate_entity(doc, {"deal"}, CHECK)) == {("/fields/1/precision", "maximum")}


def test_a_role_reports_schema_errors_and_errors_of_meaning_together() -> None:
    doc = role()
    doc["label"] = 3
    spec = doc["entities"]["deal"]
    spec["actions"]["fly"] = "own"  # schema: no such action
    spec["record_rules"].append({"name": "big", "condition": "amount >", "effect": "narrow"})
    spec["record_rules"].append({"name": "Bad", "condition": "nope > 1", "effect": "sideways"})
    spec["fields"]["nothing"] = {"access": "hidden"}
    spec["fields"]["reviewer"] = {"access": "masked"}  # a user field can't be masked
    doc["entities"]["ghost"] = {}
    found = places(validate_role(doc, ENTITIES, CHECK))
    assert found == {
        ("/label", "type"),
        ("/entities/deal/actions", "enum"),
        ("/entities/deal/record_rules/1/name", "duplicate"),
        ("/entities/deal/record_rules/1/condition", "expression"),
        ("/entities/deal/record_rules/2/name", "pattern"),
        ("/entities/deal/record_rules/2/effect", "enum"),
        ("/entities/deal/record_rules/2/condition", "expression"),
        ("/entities/deal/fields/nothing", "unknown_field"),
        ("/entities/deal/fields/reviewer/access", "not_maskable"),
        ("/entities/ghost", "unknown_entity"),
    }


def test_a_pipeline_reports_schema_errors_and_errors_of_meaning_together() -> None:
    doc = pipeline()
    doc["label"] = {"fr": "Ventes"}  # schema
    doc["stages"][0]["probability"] = 101  # schema
    doc["stages"][0]["guidance"] = {"EN": "Call"}  # schema
    doc["stages"][0]["entry_condition"] = "amount >"  # meaning
    doc["stages"][1]["required_fields"] = ["nope"]  # meaning
    doc["stages"][1]["actions"] = [
        {"type": "set_field", "field": "nope", "expression": "1"},  # meaning
        {"type": "explode"},  # schema
    ]
    doc["transitions"] = [{"from": "open", "to": ["lost"]}]  # meaning
    found = places(validate_pipeline(doc, ENTITIES, {}, CHECK))
    assert found == {
        ("/label", "required"),
        ("/stages/0/probability", "maximum"),
        ("/stages/0/guidance", "required"),
        ("/stages/0/guidance", "pattern"),
        ("/stages/0/entry_condition", "expression"),
        ("/stages/1/required_fields/0", "unknown_field"),
        ("/stages/1/actions/0/field", "unknown_field"),
        ("/stages/1/actions/1/type", "enum"),
        ("/transitions/0/to/0", "unknown_stage"),
    }


def test_a_pipeline_with_a_broken_stage_key_still_checks_the_rest() -> None:
    doc = pipeline()
    doc["stages"][0]["key"] = ""
    doc["stages"][1]["required_fields"] = ["nope"]
    doc["transitions"] = [{"from": "won", "to": ["open"]}]
    # Transitions can't be judged while a stage has no key; the other stage can.
    assert places(validate_pipeline(doc, ENTITIES, {}, CHECK)) == {
        ("/stages/0/key", "minLength"),
        ("/stages/1/required_fields/0", "unknown_field"),
    }


def test_an_approval_process_reports_schema_errors_and_errors_of_meaning_together() -> None:
    doc = process()
    doc["label"] = {"en": 5}  # schema
    doc["entry_condition"] = "amount >"  # meaning
    doc["submitters"] = ["nobody"]  # meaning
    doc["steps"].append(
        {"name": "boss", "approvers": [{"type": "user", "users": ["u9"]}], "mode": "quorum"}
    )  # schema (no label) + meaning (duplicate name, unknown user, quorum missing)
    doc["steps"].append({"name": "x", "label": {"en": "X"}, "approvers": [{"type": "robot"}]})
    doc["on_approve"].append({"type": "move_stage", "field": "stage", "stage": "closed"})
    found = places(validate_approval_process(doc, REFS))
    assert found == {
        ("/label/en", "type"),
        ("/entry_condition", "expression"),
        ("/submitters/0", "unknown_role"),
        ("/steps/1", "required"),
        ("/steps/1/name", "duplicate"),
        ("/steps/1/quorum", "required"),
        ("/steps/1/approvers/0/users/0", "unknown_user"),
        ("/steps/2/approvers/0", "oneOf"),
        ("/on_approve/1/stage", "unknown_option"),
    }


# ---- no document makes a validator raise ------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
VALIDATORS: dict[str, tuple[Callable[[], Any], Callable[[Any], list[FieldError]]]] = {
    "entity": (entity, lambda doc: validate_entity(doc, {"deal"}, CHECK)),
    "role": (role, lambda doc: validate_role(doc, ENTITIES, CHECK)),
    "pipeline": (pipeline, lambda doc: validate_pipeline(doc, ENTITIES, {}, CHECK)),
    "approval_process": (process, lambda doc: validate_approval_process(doc, REFS)),
}


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        found += [p for k, v in value.items() for p in paths(v, (*at, k))]
    elif isinstance(value, list):
        found += [p for i, v in enumerate(value) for p in paths(v, (*at, i))]
    return found


@st.composite
def broken(draw: st.DrawFn, kind: str) -> Any:
    """A valid document with a few of its parts replaced by any JSON (or removed)."""
    doc = copy.deepcopy(VALIDATORS[kind][0]())
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        if not where:
            return draw(JSON)
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(JSON)
    return doc


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(VALIDATORS)).flatmap(lambda k: st.tuples(st.just(k), broken(k))))
def test_no_broken_document_makes_a_validator_raise_and_every_schema_error_is_reported(
    case: tuple[str, Any],
) -> None:
    kind, doc = case
    found = places(VALIDATORS[kind][1](doc))
    assert places(schema_errors(kind, doc)) <= found
