"""The label shorthand: wherever a document holds a label map, a string is its English text."""

from __future__ import annotations

import copy

from metacrm.metadata.labels import label_paths, with_label_maps
from metacrm.metadata.validate import validate_entity


def test_the_schemas_say_where_each_kind_of_document_holds_labels() -> None:
    assert label_paths("entity") == (
        ("fields", "*", "help"),
        ("fields", "*", "label"),
        ("fields", "*", "options", "*", "label"),
        ("label",),
        ("plural_label",),
        ("validation_rules", "*", "message"),
    )
    assert label_paths("field") == (("help",), ("label",), ("options", "*", "label"))
    assert label_paths("role") == (("label",),)
    assert label_paths("pipeline") == (
        ("label",),
        ("stages", "*", "guidance"),
        ("stages", "*", "label"),
    )
    assert set(label_paths("approval_process")) == {
        ("label",),
        ("steps", "*", "label"),
        *((moment, "*", "message") for moment in ("on_submit", "on_approve", "on_reject")),
        ("on_recall", "*", "message"),
        *(("steps", "*", moment, "*", "message") for moment in ("on_approve", "on_reject")),
    }


def test_strings_become_english_labels_and_nothing_else_changes() -> None:
    document = {
        "name": "deal",
        "label": "Deal",
        "plural_label": {"en": "Deals", "zh-CN": "交易"},
        "description": "stays a string",
        "fields": [
            {
                "name": "stage",
                "type": "picklist",
                "label": "Stage",
                "help": "Where it is",
                "options": [{"value": "new", "label": "New"}, {"value": "won"}],
            },
            "not a field",
        ],
        "validation_rules": [{"name": "r", "condition": "true", "message": "Too late"}],
    }
    before = copy.deepcopy(document)
    expanded = with_label_maps("entity", document)
    assert document == before
    assert expanded["label"] == {"en": "Deal"}
    assert expanded["plural_label"] == {"en": "Deals", "zh-CN": "交易"}
    assert expanded["description"] == "stays a string"
    assert expanded["fields"][0]["label"] == {"en": "Stage"}
    assert expanded["fields"][0]["help"] == {"en": "Where it is"}
    assert expanded["fields"][0]["options"] == [
        {"value": "new", "label": {"en": "New"}},
        {"value": "won"},
    ]
    assert expanded["fields"][1] == "not a field"
    assert expanded["validation_rules"][0]["message"] == {"en": "Too late"}


def test_what_is_neither_a_string_nor_a_map_is_left_for_validation_to_judge() -> None:
    document = {"name": "deal", "label": 7, "fields": []}
    assert with_label_maps("entity", document) is document
    assert ("/label", "type") in {(e.field, e.code) for e in validate_entity(document, set())}
    assert with_label_maps("entity", ["not", "an", "object"]) == ["not", "an", "object"]


def test_a_document_written_with_the_shorthand_is_valid() -> None:
    document = {
        "name": "deal",
        "label": "Deal",
        "fields": [{"name": "amount", "type": "integer", "label": "Amount"}],
        "validation_rules": [
            {"name": "positive", "condition": "amount > 0", "message": "Must be positive"}
        ],
    }
    assert validate_entity(with_label_maps("entity", document), set()) == []
    assert {e.field for e in validate_entity(document, set())} == {
        "/label",
        "/validation_rules/0/message",
        "/fields/0/label",
    }
