"""The three-way merge of a plugin upgrade: what only one side changed comes from that side;
what both changed differently is a conflict that keeps the admin's value; lists of named things
merge item by item."""

from __future__ import annotations

from typing import Any

import pytest

from metacrm.plugins.merge import MISSING, merge_document

BASE: dict[str, Any] = {
    "name": "deal",
    "label": {"en": "Deal", "zh-CN": "交易"},
    "fields": [
        {"name": "name", "type": "text", "label": {"en": "Name"}},
        {"name": "amount", "type": "decimal", "scale": 2},
        {"name": "stage", "type": "picklist", "options": [{"value": "open"}, {"value": "won"}]},
    ],
}


def changed(doc: dict[str, Any], **updates: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc)
    out.update(updates)
    return out


def field_named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in doc["fields"] if f["name"] == name)


def test_what_only_the_new_version_changed_comes_in() -> None:
    theirs = changed(BASE, label={"en": "Deal", "zh-CN": "商机"})
    merged, conflicts = merge_document("entity deal", BASE, BASE, theirs)
    assert merged == theirs and conflicts == []


def test_what_only_the_admin_changed_stays() -> None:
    yours = changed(BASE, label={"en": "Big deal", "zh-CN": "交易"})
    merged, conflicts = merge_document("entity deal", BASE, yours, BASE)
    assert merged == yours and conflicts == []


def test_changes_to_different_places_both_land() -> None:
    yours = changed(BASE, label={"en": "Big deal", "zh-CN": "交易"})
    theirs = changed(BASE, title_field="name")
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert merged["label"] == {"en": "Big deal", "zh-CN": "交易"}
    assert merged["title_field"] == "name"
    assert conflicts == []


def test_the_same_place_changed_differently_keeps_yours_and_says_so() -> None:
    yours = changed(BASE, label={"en": "Big deal", "zh-CN": "交易"})
    theirs = changed(BASE, label={"en": "Opportunity", "zh-CN": "交易"})
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert merged["label"]["en"] == "Big deal"
    [conflict] = conflicts
    assert (conflict.document, conflict.where) == ("entity deal", "/label/en")
    assert (conflict.base, conflict.yours, conflict.theirs) == ("Deal", "Big deal", "Opportunity")
    assert "kept yours 'Big deal'" in conflict.describe()


def test_both_making_the_same_change_is_no_conflict() -> None:
    both = changed(BASE, label={"en": "Opportunity", "zh-CN": "商机"})
    merged, conflicts = merge_document("entity deal", BASE, both, both)
    assert merged == both and conflicts == []


def test_fields_merge_by_name_keeping_the_admins_and_adding_the_new_versions() -> None:
    yours = changed(BASE)
    yours["fields"].append({"name": "region", "type": "text"})
    theirs = changed(BASE)
    theirs["fields"].insert(2, {"name": "close_date", "type": "date"})
    field_named(theirs, "amount")["scale"] = 4
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert [f["name"] for f in merged["fields"]] == [
        "name",
        "amount",
        "close_date",
        "stage",
        "region",
    ]
    assert field_named(merged, "amount")["scale"] == 4
    assert conflicts == []


def test_a_field_the_admin_removed_stays_removed_unless_the_new_version_changed_it() -> None:
    yours = changed(BASE, fields=[f for f in BASE["fields"] if f["name"] != "amount"])
    merged, conflicts = merge_document("entity deal", BASE, yours, BASE)
    assert "amount" not in [f["name"] for f in merged["fields"]] and conflicts == []
    theirs = changed(BASE)
    field_named(theirs, "amount")["scale"] = 4
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert "amount" not in [f["name"] for f in merged["fields"]]
    [conflict] = conflicts
    assert conflict.where == "/fields/amount" and conflict.yours is MISSING


def test_a_field_the_new_version_dropped_goes_unless_the_admin_changed_it() -> None:
    theirs = changed(BASE, fields=[f for f in BASE["fields"] if f["name"] != "amount"])
    merged, conflicts = merge_document("entity deal", BASE, BASE, theirs)
    assert "amount" not in [f["name"] for f in merged["fields"]] and conflicts == []
    yours = changed(BASE)
    field_named(yours, "amount")["label"] = {"en": "Value"}
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert field_named(merged, "amount")["label"] == {"en": "Value"}
    assert [c.where for c in conflicts] == ["/fields/amount"]


def test_options_merge_by_value() -> None:
    yours = changed(BASE)
    field_named(yours, "stage")["options"].append({"value": "paused"})
    theirs = changed(BASE)
    field_named(theirs, "stage")["options"].insert(1, {"value": "lost"})
    merged, conflicts = merge_document("entity deal", BASE, yours, theirs)
    assert [o["value"] for o in field_named(merged, "stage")["options"]] == [
        "open",
        "lost",
        "won",
        "paused",
    ]
    assert conflicts == []


def test_lists_without_names_are_single_values() -> None:
    base = {"name": "r", "required_fields": ["a"]}
    merged, conflicts = merge_document(
        "pipeline r", base, {**base, "required_fields": ["a", "b"]}, {**base, "required_fields": []}
    )
    assert merged["required_fields"] == ["a", "b"]
    assert [c.where for c in conflicts] == ["/required_fields"]


@pytest.mark.parametrize(
    ("base", "yours", "theirs", "expected", "conflicted"),
    [
        (MISSING, MISSING, {"name": "x"}, {"name": "x"}, False),  # a new document comes in
        ({"name": "x"}, MISSING, {"name": "x"}, MISSING, False),  # one the admin deleted stays so
        ({"name": "x"}, {"name": "x"}, MISSING, MISSING, False),  # one dropped and untouched goes
        ({"name": "x", "a": 1}, MISSING, {"name": "x", "a": 2}, MISSING, True),
        (
            MISSING,
            {"name": "x", "a": 1},
            {"name": "x", "b": 2},
            {"name": "x", "a": 1, "b": 2},
            False,
        ),
        (MISSING, {"name": "x", "a": 1}, {"name": "x", "a": 2}, {"name": "x", "a": 1}, True),
    ],
)
def test_whole_documents(
    base: Any, yours: Any, theirs: Any, expected: Any, conflicted: bool
) -> None:
    merged, conflicts = merge_document("role x", base, yours, theirs)
    assert merged == expected
    assert bool(conflicts) is conflicted


def test_a_place_is_named_with_escaped_segments() -> None:
    base = {"name": "r", "entities": {"a/b": {"x": 1}}}
    yours = {"name": "r", "entities": {"a/b": {"x": 2}}}
    theirs = {"name": "r", "entities": {"a/b": {"x": 3}}}
    _, [conflict] = merge_document("role r", base, yours, theirs)
    assert conflict.where == "/entities/a~1b/x"
