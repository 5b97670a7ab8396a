"""The pipeline document validator and what a pipeline makes of its entity: every problem at
its JSON Pointer, options that are the stages, derived fields, transitions."""

from __future__ import annotations

import copy
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import (
    PipelineDef,
    entity_document,
    validate_pipeline,
)
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker

DEAL_DOC: dict[str, Any] = {
    "name": "deal",
    "label": {"en": "Deal"},
    "fields": [
        {"name": "amount", "type": "decimal"},
        {
            "name": "stage",
            "type": "picklist",
            "default": "old",
            "options": [{"value": "open", "color": "green"}, {"value": "old"}],
        },
        {"name": "reason", "type": "picklist", "options": [{"value": "price"}]},
        {"name": "chance", "type": "integer"},
    ],
}
DEAL = EntityDef.from_doc(DEAL_DOC)
ENTITIES = {"deal": DEAL}
CHECK = expression_checker(Catalog(stamp=0, entities=ENTITIES))


def doc(**changes: Any) -> dict[str, Any]:
    base = {
        "name": "sales",
        "label": {"en": "Sales"},
        "entity": "deal",
        "field": "stage",
        "stages": [
            {"key": "open", "label": {"en": "Open"}, "category": "open", "probability": 20},
            {"key": "won", "label": {"en": "Won"}, "category": "won", "probability": 100},
        ],
    }
    base.update(changes)
    return base


def pointers(document: Any, pipelines: dict[str, PipelineDef] | None = None) -> list[str]:
    return [e.field for e in validate_pipeline(document, ENTITIES, pipelines or {}, CHECK)]


def test_a_valid_pipeline_has_no_errors_and_gates_may_use_the_derived_fields() -> None:
    gated = doc()
    gated["stages"][1]["entry_condition"] = "days_in_stage > 2 and old.amount != amount"
    assert pointers(gated) == []


def test_not_an_object_is_one_schema_error() -> None:
    assert pointers([]) == [""]


def test_a_second_pipeline_on_the_field_is_refused_but_a_replace_is_not() -> None:
    existing = {"sales": PipelineDef.from_doc(doc())}
    assert pointers(doc(), existing) == []
    assert pointers(doc(name="other"), existing) == ["/field"]


def test_probability_and_categories_are_bounded_by_the_schema() -> None:
    bad = doc()
    bad["stages"][0].update(probability=-1, category="pending", forecast_category="maybe")
    assert sorted(pointers(bad)) == [
        "/stages/0/category",
        "/stages/0/forecast_category",
        "/stages/0/probability",
    ]


def test_named_fields_must_exist_with_the_right_type() -> None:
    assert pointers(doc(lost_reason_field="amount", probability_field="reason")) == [
        "/lost_reason_field",
        "/probability_field",
    ]
    assert pointers(doc(lost_reason_field="nope", probability_field="id")) == [
        "/lost_reason_field",
        "/probability_field",
    ]
    assert pointers(doc(lost_reason_field="reason", probability_field="chance")) == []


def test_the_entity_gets_stage_options_and_derived_fields_once() -> None:
    pipeline = doc()
    changed = entity_document(DEAL_DOC, pipeline)
    stage_field = changed["fields"][1]
    assert stage_field["options"] == [
        {"value": "open", "label": {"en": "Open"}, "color": "green"},
        {"value": "won", "label": {"en": "Won"}},
    ]
    # The old default is no stage any more: the first stage, unless a mapping says otherwise.
    assert stage_field["default"] == "open"
    assert entity_document(DEAL_DOC, pipeline, {"old": "won"})["fields"][1]["default"] == "won"
    assert [f["name"] for f in changed["fields"]][-2:] == ["stage_entered_at", "days_in_stage"]
    assert entity_document(changed, pipeline) == changed
    assert DEAL_DOC["fields"][1]["options"][1] == {"value": "old"}


def test_transitions_allow_any_move_unless_listed() -> None:
    free = PipelineDef.from_doc(doc())
    assert free.allows("won", "open") and free.allows("open", "won")
    listed = PipelineDef.from_doc(doc(transitions=[{"from": "open", "to": ["won"]}]))
    assert listed.allows("open", "won")
    assert not listed.allows("won", "open")


def test_stage_defaults_for_forecast_category() -> None:
    pipeline = doc()
    pipeline["stages"].append(
        {"key": "lost", "label": {"en": "Lost"}, "category": "lost", "probability": 0}
    )
    stages = PipelineDef.from_doc(copy.deepcopy(pipeline)).stages
    assert [s.forecast_category for s in stages] == ["pipeline", "closed", "omitted"]
