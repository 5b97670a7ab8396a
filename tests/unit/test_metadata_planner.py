"""The migration planner: which operations a change needs, and which changes it refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metacrm.metadata.planner import (
    Operation,
    Plan,
    plan_change,
    plan_create,
    plan_purge,
    plan_remove,
)


def stored(*fields: dict[str, Any], hidden: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A document as the store keeps it, with its hidden fields."""
    return {
        "name": "deal",
        "label": {"en": "Deal"},
        "title_field": "name",
        "fields": [{"name": "name", "type": "text", "required": True}, *fields],
        "hidden_fields": list(hidden),
    }


def submitted(current: dict[str, Any], *fields: dict[str, Any]) -> dict[str, Any]:
    """The public document with these fields after `name` (as an admin would PUT it)."""
    doc = copy.deepcopy(current)
    doc.pop("hidden_fields")
    doc["fields"] = [doc["fields"][0], *fields]
    return doc


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(op.kind, op.field.name if op.field else "") for op in plan.operations]


def op(plan: Plan, kind: str) -> Operation:
    found = [o for o in plan.operations if o.kind == kind]
    assert len(found) == 1, kinds(plan)
    return found[0]


def change(old: dict[str, Any], new: dict[str, Any]) -> Plan:
    current = stored(old)
    return plan_change(current, submitted(current, new))


def errors(plan: Plan) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in plan.errors}


# --- create ----------------------------------------------------------------------------------


def test_create_makes_the_table_and_field_indexes() -> None:
    plan = plan_create(
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "fields": [
                {"name": "name", "type": "text"},
                {"name": "code", "type": "text", "unique": True},
                {"name": "close", "type": "date", "indexed": True},
                {"name": "account", "type": "lookup", "target": "account"},
                {"name": "both", "type": "text", "unique": True, "indexed": True},
            ],
        },
        storage_id=1,
    )
    assert plan.errors == []
    assert kinds(plan) == [
        ("create_table", ""),
        ("create_unique", "code"),
        ("create_index", "close"),
        ("create_index", "account"),
        ("create_unique", "both"),
    ]
    assert plan.entity.hidden_fields == ()


def test_create_drops_client_hints_from_the_stored_document() -> None:
    document = {
        "name": "deal",
        "label": {"en": "Deal"},
        "version": 7,
        "hidden_fields": [{"name": "ghost", "type": "text"}],
        "storage": {"id": 99, "next_field_id": 99},
        "fields": [{"name": "name", "type": "text", "renamed_from": "title", "storage_id": 42}],
    }
    before = copy.deepcopy(document)
    plan = plan_create(document, storage_id=5)
    assert plan.entity.doc == {
        "name": "deal",
        "label": {"en": "Deal"},
        "fields": [{"name": "name", "type": "text", "storage_id": 1}],
        "hidden_fields": [],
        "storage": {"id": 5, "next_field_id": 2},
    }
    assert document == before


def test_create_has_no_data_checks() -> None:
    plan = plan_create(
        {"name": "d", "label": {"en": "D"}, "fields": [{"name": "a", "type": "text"}]},
        storage_id=1,
    )
    assert all(o.checks == () for o in plan.operations)


# --- no change -------------------------------------------------------------------------------


def test_unchanged_document_plans_nothing() -> None:
    current = stored({"name": "amount", "type": "decimal", "indexed": True})
    plan = plan_change(current, submitted(current, *current["fields"][1:]))
    assert plan.operations == []
    assert plan.errors == []
    assert not plan.changes_schema


def test_label_and_help_changes_plan_nothing() -> None:
    plan = change(
        {"name": "x", "type": "text", "label": {"en": "X"}},
        {"name": "x", "type": "text", "label": {"en": "Ex"}, "help": {"en": "h"}},
    )
    assert plan.operations == []


@pytest.mark.parametrize(("before", "after"), [(False, True), (True, False)])
def test_turning_inherit_sharing_on_or_off_plans_nothing(before: bool, after: bool) -> None:
    lookup = {"name": "account", "type": "lookup", "target": "account"}
    plan = change({**lookup, "inherit_sharing": before}, {**lookup, "inherit_sharing": after})
    assert plan.operations == []
    assert plan.errors == []
    assert plan.entity.field("account").inherits_sharing is after  # type: ignore[union-attr]


# --- adding fields ---------------------------------------------------------------------------


def test_new_field_adds_a_column() -> None:
    current = stored()
    plan = plan_change(current, submitted(current, {"name": "notes", "type": "textarea"}))
    assert kinds(plan) == [("add_column", "notes")]
    assert plan.changes_schema


def test_new_field_with_default_is_backfilled() -> None:
    current = stored()
    plan = plan_change(
        current,
        submitted(current, {"name": "score", "type": "integer", "default": 3, "required": True}),
    )
    assert kinds(plan) == [("add_column", "score"), ("backfill", "score")]


def test_new_required_field_without_default_needs_rows_checked() -> None:
    current = stored()
    plan = plan_change(
        current, submitted(current, {"name": "score", "type": "integer", "required": True})
    )
    assert kinds(plan) == [("add_column", "score"), ("check_required", "score")]
    assert op(plan, "check_required").checks == ("rows_need_default",)


def test_new_indexed_and_unique_fields_get_their_indexes() -> None:
    current = stored()
    plan = plan_change(
        current,
        submitted(
            current,
            {"name": "close", "type": "date", "indexed": True},
            {"name": "code", "type": "text", "unique": True},
            {"name": "rep", "type": "user"},
        ),
    )
    assert kinds(plan) == [
        ("add_column", "close"),
        ("create_index", "close"),
        ("add_column", "code"),
        ("create_unique", "code"),
        ("add_column", "rep"),
        ("create_index", "rep"),
    ]
    # A new column is empty, but the check is still asked for; the runner decides.
    assert op(plan, "create_unique").checks == ("unique",)


def test_new_formula_field_has_no_column() -> None:
    current = stored()
    formula = {"name": "f", "type": "formula", "expression": "1", "result_type": "integer"}
    plan = plan_change(current, submitted(current, formula))
    assert kinds(plan) == [("unhide_field", "f")]
    assert not plan.changes_schema


# --- hiding and unhiding ---------------------------------------------------------------------


def test_field_left_out_of_the_document_is_hidden_and_its_column_kept() -> None:
    current = stored({"name": "amount", "type": "decimal"}, {"name": "notes", "type": "text"})
    plan = plan_change(current, submitted(current, {"name": "notes", "type": "text"}))
    assert kinds(plan) == [("hide_field", "amount")]
    assert [f.name for f in plan.entity.fields] == ["name", "notes"]
    assert [f.name for f in plan.entity.hidden_fields] == ["amount"]
    assert plan.entity.doc["hidden_fields"] == [{"name": "amount", "type": "decimal"}]
    assert not plan.changes_schema


def test_hiding_a_formula_keeps_nothing_hidden() -> None:
    formula = {"name": "f", "type": "formula", "expression": "1", "result_type": "integer"}
    current = stored(formula)
    plan = plan_change(current, submitted(current))
    assert kinds(plan) == [("hide_field", "f")]
    assert plan.entity.hidden_fields == ()


def test_readding_a_hidden_field_unhides_it() -> None:
    current = stored(hidden=({"name": "amount", "type": "decimal"},))
    plan = plan_change(current, submitted(current, {"name": "amount", "type": "decimal"}))
    assert kinds(plan) == [("unhide_field", "amount")]
    assert plan.entity.hidden_fields == ()
    assert [f.name for f in plan.entity.fields] == ["name", "amount"]


def test_other_hidden_fields_stay_hidden() -> None:
    current = stored(hidden=({"name": "a", "type": "text"}, {"name": "b", "type": "text"}))
    plan = plan_change(current, submitted(current, {"name": "b", "type": "text"}))
    assert [f.name for f in plan.entity.hidden_fields] == ["a"]


def test_readding_a_hidden_field_with_a_new_type_converts_it() -> None:
    current = stored(hidden=({"name": "amount", "type": "text"},))
    plan = plan_change(current, submitted(current, {"name": "amount", "type": "integer"}))
    assert kinds(plan) == [("unhide_field", "amount"), ("change_type", "amount")]


def test_readding_a_hidden_field_as_unconvertible_type_is_refused() -> None:
    current = stored(hidden=({"name": "account", "type": "lookup", "target": "account"},))
    plan = plan_change(current, submitted(current, {"name": "account", "type": "text"}))
    assert errors(plan) == {("/fields/1/type", "type_change")}


# --- purge -----------------------------------------------------------------------------------


def test_purge_of_an_active_field_drops_its_index_then_its_column() -> None:
    current = stored({"name": "close", "type": "date", "indexed": True})
    plan = plan_purge(current, "close")
    assert plan.errors == []
    assert kinds(plan) == [("drop_index", "close"), ("drop_column", "close")]
    assert [f.name for f in plan.entity.fields] == ["name"]


def test_purge_of_a_hidden_field_drops_its_column() -> None:
    current = stored(hidden=({"name": "code", "type": "text", "unique": True},))
    plan = plan_purge(current, "code")
    assert kinds(plan) == [("drop_unique", "code"), ("drop_column", "code")]
    assert plan.entity.hidden_fields == ()
    assert plan.entity.doc["hidden_fields"] == []


def test_purge_does_not_modify_the_current_document() -> None:
    current = stored({"name": "close", "type": "date"})
    before = copy.deepcopy(current)
    plan_purge(current, "close")
    assert current == before


def test_purge_of_a_formula_has_nothing_to_drop() -> None:
    current = stored({"name": "f", "type": "formula", "expression": "1", "result_type": "text"})
    plan = plan_purge(current, "f")
    assert plan.operations == []
    assert plan.entity.fields[-1].name == "name"


def test_purge_of_an_unknown_field_is_refused() -> None:
    plan = plan_purge(stored(), "ghost")
    assert errors(plan) == {("/fields", "unknown_field")}
    assert plan.operations == []


def test_purge_of_a_system_field_is_refused() -> None:
    assert errors(plan_purge(stored(), "owner")) == {("/fields", "unknown_field")}


def test_purge_of_the_title_field_is_refused() -> None:
    plan = plan_purge(stored(), "name")
    assert errors(plan) == {("/title_field", "in_use")}


# --- renames ---------------------------------------------------------------------------------


def test_renamed_from_renames_the_column() -> None:
    current = stored({"name": "amount", "type": "decimal"})
    plan = plan_change(
        current, submitted(current, {"name": "value", "type": "decimal", "renamed_from": "amount"})
    )
    assert plan.errors == []
    assert kinds(plan) == [("rename_column", "value")]
    rename = op(plan, "rename_column")
    assert rename.old_field is not None
    assert rename.old_field.name == "amount"
    assert rename.as_json()["from"] == "amount"
    assert plan.entity.hidden_fields == ()
    assert "renamed_from" not in plan.entity.doc["fields"][1]


def test_rename_with_a_type_change_renames_then_converts() -> None:
    current = stored({"name": "amount", "type": "text"})
    plan = plan_change(
        current, submitted(current, {"name": "value", "type": "integer", "renamed_from": "amount"})
    )
    assert kinds(plan) == [("rename_column", "value"), ("change_type", "value")]
    converted = op(plan, "change_type")
    assert converted.old_field is not None
    assert (converted.old_field.name, converted.old_field.type) == ("value", "text")


def test_rename_of_a_formula_has_no_column_to_rename() -> None:
    formula = {"name": "f", "type": "formula", "expression": "1", "result_type": "text"}
    current = stored(formula)
    plan = plan_change(current, submitted(current, {**formula, "name": "g", "renamed_from": "f"}))
    assert plan.operations == []
    assert plan.errors == []


def test_rename_from_a_nonexistent_field_is_refused() -> None:
    current = stored()
    plan = plan_change(
        current, submitted(current, {"name": "value", "type": "text", "renamed_from": "ghost"})
    )
    assert errors(plan) == {("/fields/1/renamed_from", "unknown_field")}


def test_rename_from_a_hidden_field_is_refused() -> None:
    current = stored(hidden=({"name": "old", "type": "text"},))
    plan = plan_change(
        current, submitted(current, {"name": "value", "type": "text", "renamed_from": "old"})
    )
    assert errors(plan) == {("/fields/1/renamed_from", "unknown_field")}


def test_rename_onto_an_existing_field_is_refused() -> None:
    current = stored({"name": "a", "type": "text"}, {"name": "b", "type": "text"})
    plan = plan_change(
        current,
        submitted(current, {"name": "b", "type": "text", "renamed_from": "a"}),
    )
    assert errors(plan) == {("/fields/1/name", "exists")}


def test_rename_onto_a_hidden_field_is_refused() -> None:
    current = stored({"name": "a", "type": "text"}, hidden=({"name": "b", "type": "text"},))
    plan = plan_change(
        current, submitted(current, {"name": "b", "type": "text", "renamed_from": "a"})
    )
    assert errors(plan) == {("/fields/1/name", "exists")}
    assert "hidden" in plan.errors[0].message


def test_renaming_one_field_into_two_is_refused() -> None:
    current = stored({"name": "a", "type": "text"})
    plan = plan_change(
        current,
        submitted(
            current,
            {"name": "b", "type": "text", "renamed_from": "a"},
            {"name": "c", "type": "text", "renamed_from": "a"},
        ),
    )
    assert [e.field for e in plan.errors] == ["/fields/2/renamed_from"]


def test_rename_from_a_field_that_stays_in_the_document_is_refused() -> None:
    current = stored({"name": "a", "type": "text"})
    plan = plan_change(
        current,
        submitted(
            current,
            {"name": "a", "type": "text"},
            {"name": "b", "type": "text", "renamed_from": "a"},
        ),
    )
    assert [e.field for e in plan.errors] == ["/fields/2/renamed_from"]


# --- indexes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"indexed": False}, {"indexed": True}, [("create_index", "x")]),
        ({"indexed": True}, {}, [("drop_index", "x")]),
        ({}, {"unique": True}, [("create_unique", "x")]),
        ({"unique": True}, {"unique": False}, [("drop_unique", "x")]),
        (
            {"indexed": True},
            {"indexed": True, "unique": True},
            [("drop_index", "x"), ("create_unique", "x")],
        ),
        (
            {"indexed": True, "unique": True},
            {"indexed": True},
            [("drop_unique", "x"), ("create_index", "x")],
        ),
    ],
)
def test_index_changes(old: dict[str, Any], new: dict[str, Any], expected: list[Any]) -> None:
    plan = change({"name": "x", "type": "text", **old}, {"name": "x", "type": "text", **new})
    assert kinds(plan) == expected


def test_new_unique_constraint_checks_existing_values() -> None:
    plan = change({"name": "x", "type": "text"}, {"name": "x", "type": "text", "unique": True})
    assert op(plan, "create_unique").checks == ("unique",)


# --- type changes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("text", "integer"),
        ("text", "decimal"),
        ("text", "date"),
        ("integer", "decimal"),
        ("decimal", "integer"),
        ("integer", "text"),
        ("boolean", "integer"),
        ("date", "datetime"),
        ("datetime", "date"),
        ("picklist", "multipicklist"),
        ("multipicklist", "picklist"),
    ],
)
def test_rewrite_type_changes_convert_the_column_with_a_value_check(old: str, new: str) -> None:
    options = {"options": [{"value": "a"}]}
    old_doc = {"name": "x", "type": old, **(options if "picklist" in old else {})}
    new_doc = {"name": "x", "type": new, **(options if "picklist" in new else {})}
    plan = change(old_doc, new_doc)
    assert plan.errors == []
    assert kinds(plan) == [("change_type", "x")]
    converted = op(plan, "change_type")
    assert converted.checks == ("values",)
    assert converted.old_field is not None
    assert converted.old_field.type == old


@pytest.mark.parametrize(("old", "new"), [("text", "email"), ("email", "phone"), ("text", "url")])
def test_revalidate_type_changes_only_check_values(old: str, new: str) -> None:
    plan = change({"name": "x", "type": old}, {"name": "x", "type": new})
    assert kinds(plan) == [("check_values", "x")]
    assert op(plan, "check_values").checks == ("values",)


def test_text_to_picklist_checks_values_against_options() -> None:
    plan = change(
        {"name": "x", "type": "text"},
        {"name": "x", "type": "picklist", "options": [{"value": "a"}]},
    )
    assert kinds(plan) == [("check_values", "x")]


def test_changing_decimal_scale_rewrites_the_column() -> None:
    plan = change(
        {"name": "x", "type": "decimal", "precision": 10, "scale": 2},
        {"name": "x", "type": "decimal", "precision": 10, "scale": 4},
    )
    assert kinds(plan) == [("change_type", "x")]


def test_indexed_field_changing_type_has_its_index_rebuilt_around_the_rewrite() -> None:
    plan = change(
        {"name": "x", "type": "text", "unique": True},
        {"name": "x", "type": "integer", "unique": True},
    )
    assert kinds(plan) == [("drop_unique", "x"), ("change_type", "x"), ("create_unique", "x")]


def test_type_change_to_required_also_checks_blanks() -> None:
    plan = change({"name": "x", "type": "text"}, {"name": "x", "type": "integer", "required": True})
    assert kinds(plan) == [("change_type", "x"), ("check_required", "x")]
    assert op(plan, "check_required").checks == ("required",)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"type": "lookup", "target": "account"}, {"type": "text"}),
        ({"type": "text"}, {"type": "lookup", "target": "account"}),
        ({"type": "formula", "expression": "1", "result_type": "integer"}, {"type": "integer"}),
        ({"type": "integer"}, {"type": "formula", "expression": "1", "result_type": "integer"}),
        ({"type": "boolean"}, {"type": "date"}),
        ({"type": "user"}, {"type": "text"}),
        ({"type": "text"}, {"type": "autonumber", "pattern": "A-{seq:3}"}),
    ],
)
def test_type_changes_outside_the_table_are_refused_with_pointer(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    plan = change({"name": "x", **old}, {"name": "x", **new})
    assert errors(plan) == {("/fields/1/type", "type_change")}
    assert f"from {old['type']} to {new['type']}" in plan.errors[0].message


def test_refused_type_change_lists_what_the_type_can_become() -> None:
    plan = change({"name": "x", "type": "boolean"}, {"name": "x", "type": "date"})
    assert "integer, text, textarea" in plan.errors[0].message


def test_formula_result_type_change_needs_no_migration() -> None:
    plan = change(
        {"name": "x", "type": "formula", "expression": "1", "result_type": "integer"},
        {"name": "x", "type": "formula", "expression": "'a'", "result_type": "text"},
    )
    assert plan.errors == []
    assert plan.operations == []


def test_all_refused_changes_are_reported_together() -> None:
    current = stored(
        {"name": "a", "type": "lookup", "target": "account"},
        {"name": "b", "type": "boolean"},
    )
    plan = plan_change(
        current,
        submitted(
            current,
            {"name": "a", "type": "text"},
            {"name": "b", "type": "date"},
            {"name": "c", "type": "text", "renamed_from": "ghost"},
        ),
    )
    assert errors(plan) == {
        ("/fields/1/type", "type_change"),
        ("/fields/2/type", "type_change"),
        ("/fields/3/renamed_from", "unknown_field"),
    }


# --- tightening ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"type": "text", "max_length": 100}, {"type": "text", "max_length": 10}),
        ({"type": "text"}, {"type": "text", "max_length": 10}),
        ({"type": "integer"}, {"type": "integer", "min": 0}),
        ({"type": "integer", "max": 10}, {"type": "integer", "max": 5}),
        ({"type": "date"}, {"type": "date", "max": "2030-01-01"}),
        (
            {"type": "picklist", "options": [{"value": "a"}, {"value": "b"}]},
            {"type": "picklist", "options": [{"value": "a"}]},
        ),
    ],
)
def test_changed_constraints_check_existing_values(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    plan = change({"name": "x", **old}, {"name": "x", **new})
    assert kinds(plan) == [("check_values", "x")]
    checked = op(plan, "check_values")
    assert checked.checks == ("values",)
    assert checked.old_field is not None


def test_making_a_field_required_checks_for_blanks() -> None:
    plan = change({"name": "x", "type": "text"}, {"name": "x", "type": "text", "required": True})
    assert kinds(plan) == [("check_required", "x")]
    assert op(plan, "check_required").checks == ("required",)


def test_a_field_that_stays_required_is_not_checked_again() -> None:
    plan = change(
        {"name": "x", "type": "text", "required": True},
        {"name": "x", "type": "text", "required": True, "label": {"en": "X"}},
    )
    assert plan.operations == []


def test_dropping_required_needs_no_check() -> None:
    plan = change({"name": "x", "type": "text", "required": True}, {"name": "x", "type": "text"})
    assert plan.operations == []


# --- plan output -----------------------------------------------------------------------------


def test_plan_as_json_describes_every_operation() -> None:
    current = stored({"name": "old", "type": "text"}, {"name": "gone", "type": "text"})
    plan = plan_change(
        current,
        submitted(
            current,
            {"name": "new", "type": "integer", "renamed_from": "old"},
            {"name": "extra", "type": "text", "default": "x", "indexed": True},
        ),
    )
    assert plan.as_json() == {
        "entity": "deal",
        "operations": [
            {
                "op": "rename_column",
                "field": "new",
                "from": "old",
                "description": "rename column old to new",
            },
            {"op": "change_type", "field": "new", "description": "change new from text to integer"},
            {"op": "add_column", "field": "extra", "description": "add column extra"},
            {
                "op": "backfill",
                "field": "extra",
                "description": "fill extra with its default on existing rows",
            },
            {"op": "create_index", "field": "extra", "description": "index extra"},
            {
                "op": "hide_field",
                "field": "gone",
                "description": "hide field gone (its data is kept)",
            },
        ],
    }


def test_planning_does_not_modify_its_inputs() -> None:
    current = stored({"name": "old", "type": "text"})
    document = submitted(current, {"name": "new", "type": "integer", "renamed_from": "old"})
    before = copy.deepcopy((current, document))
    plan_change(current, document)
    assert (current, document) == before


# --- storage ids -----------------------------------------------------------------------------


def ids(doc: dict[str, Any]) -> dict[str, int]:
    return {f["name"]: f["storage_id"] for f in (*doc["fields"], *doc["hidden_fields"])}


def created(*fields: dict[str, Any]) -> dict[str, Any]:
    document = {"name": "deal", "label": {"en": "Deal"}, "fields": list(fields)}
    return plan_create(document, storage_id=3).entity.doc


def test_create_gives_the_entity_its_id_and_each_field_the_next_one() -> None:
    doc = created({"name": "a", "type": "text"}, {"name": "b", "type": "integer"})
    assert doc["storage"] == {"id": 3, "next_field_id": 3}
    assert ids(doc) == {"a": 1, "b": 2}


def test_fields_keep_their_ids_through_rename_hide_and_unhide() -> None:
    doc = created({"name": "a", "type": "text"}, {"name": "b", "type": "text"})
    renamed = plan_change(
        doc,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "fields": [
                {"name": "z", "type": "text", "renamed_from": "a"},
            ],
        },
    ).entity.doc
    assert ids(renamed) == {"z": 1, "b": 2}
    unhidden = plan_change(
        renamed,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "fields": [
                {"name": "b", "type": "integer"},
                {"name": "z", "type": "text"},
                {"name": "c", "type": "text"},
            ],
        },
    ).entity.doc
    assert ids(unhidden) == {"b": 2, "z": 1, "c": 3}
    assert unhidden["storage"] == {"id": 3, "next_field_id": 4}


def test_a_purged_fields_id_is_never_given_again() -> None:
    doc = created({"name": "a", "type": "text"}, {"name": "b", "type": "text", "indexed": True})
    purged = plan_purge(doc, "b").entity.doc
    assert ids(purged) == {"a": 1}
    again = plan_change(
        purged,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "fields": [
                {"name": "a", "type": "text"},
                {"name": "b", "type": "text"},
            ],
        },
    ).entity.doc
    assert ids(again) == {"a": 1, "b": 3}


def test_storage_ids_a_client_sends_are_ignored() -> None:
    doc = created({"name": "a", "type": "text"})
    changed = plan_change(
        doc,
        {
            "name": "deal",
            "label": {"en": "Deal"},
            "storage": {"id": 1, "next_field_id": 1},
            "fields": [
                {"name": "a", "type": "text", "storage_id": 7},
                {"name": "b", "type": "text", "storage_id": 1},
            ],
        },
    ).entity.doc
    assert ids(changed) == {"a": 1, "b": 2}
    assert changed["storage"] == {"id": 3, "next_field_id": 3}


def test_an_entity_stored_before_ids_gets_none_from_a_change() -> None:
    current = stored({"name": "a", "type": "text"})
    plan = plan_change(
        current,
        submitted(
            current, {"name": "a", "type": "text"}, {"name": "b", "type": "text", "indexed": True}
        ),
    )
    assert "storage" not in plan.entity.doc
    assert all("storage_id" not in f for f in plan.entity.doc["fields"])


def test_deleting_an_entity_hides_it_and_only_a_purge_drops_its_table() -> None:
    current = stored({"name": "amount", "type": "integer"}, hidden=({"name": "x", "type": "text"},))
    before = copy.deepcopy(current)
    soft, purge = plan_remove(current, purge=False), plan_remove(current, purge=True)
    assert kinds(soft) == [("hide_entity", "")] and not soft.changes_schema
    assert kinds(purge) == [("drop_table", "")] and purge.changes_schema
    assert soft.entity.name == purge.entity.name == "deal" and not soft.errors
    assert [f.name for f in purge.entity.hidden_fields] == ["x"]
    assert purge.as_json()["operations"] == [
        {"op": "drop_table", "description": "drop the table and its records for good"}
    ]
    assert current == before
