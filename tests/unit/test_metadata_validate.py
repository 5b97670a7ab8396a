"""The entity and field validator: every problem is reported, each at its JSON Pointer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metacrm.metadata.validate import ExpressionSite, pointer, validate_entity, validate_field
from metacrm.platform.errors import FieldError

KNOWN = {"account"}


def opportunity() -> dict[str, Any]:
    """docs/api.md's example document, without validation rules (their expressions are the
    rule language's business)."""
    return {
        "name": "opportunity",
        "label": {"en": "Opportunity", "zh-CN": "商机"},
        "plural_label": {"en": "Opportunities", "zh-CN": "商机"},
        "title_field": "name",
        "fields": [
            {
                "name": "name",
                "type": "text",
                "label": {"en": "Name"},
                "required": True,
                "max_length": 200,
            },
            {"name": "amount", "type": "decimal", "precision": 14, "scale": 2, "min": 0},
            {
                "name": "stage",
                "type": "picklist",
                "options": [{"value": "qualify", "label": {"en": "Qualify"}}],
                "default": "qualify",
            },
            {"name": "account", "type": "lookup", "target": "account"},
            {"name": "close_date", "type": "date", "indexed": True},
        ],
    }


def with_fields(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": "deal", "label": {"en": "Deal"}, "fields": list(fields)}


def places(errors: list[FieldError]) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in errors}


def field_errors(doc: dict[str, Any], known: set[str] = KNOWN) -> set[tuple[str, str]]:
    return places(validate_field(doc, ("fields", 0), known))


# --- valid documents -------------------------------------------------------------------------


def test_api_example_document_is_valid() -> None:
    assert validate_entity(opportunity(), KNOWN) == []


def test_every_field_type_with_its_options_is_valid() -> None:
    doc = with_fields(
        {"name": "t", "type": "text", "max_length": 10, "default": "x", "unique": True},
        {"name": "ta", "type": "textarea"},
        {"name": "e", "type": "email", "default": "a@b.co"},
        {"name": "p", "type": "phone"},
        {"name": "u", "type": "url"},
        {"name": "i", "type": "integer", "min": -5, "max": 5, "default": 0},
        {"name": "d", "type": "decimal", "precision": 6, "scale": 3, "default": "1.5"},
        {"name": "b", "type": "boolean", "default": False},
        {"name": "dt", "type": "date", "min": "2020-01-01", "default": "2024-02-29"},
        {"name": "ts", "type": "datetime", "default": "2024-01-01T10:00:00+02:00"},
        {"name": "pl", "type": "picklist", "options": [{"value": "a"}, {"value": "b"}]},
        {
            "name": "mp",
            "type": "multipicklist",
            "options": [{"value": "a"}, {"value": "b"}],
            "default": ["a", "b"],
        },
        {"name": "lk", "type": "lookup", "target": "account"},
        {"name": "us", "type": "user"},
        {"name": "num", "type": "autonumber", "pattern": "OPP-{YYYY}-{MM}-{DD}-{YY}-{seq:5}"},
        {"name": "fx", "type": "formula", "expression": "i + 1", "result_type": "integer"},
    )
    assert validate_entity(doc, KNOWN) == []


def test_id_is_accepted_as_title_field() -> None:
    doc = opportunity()
    doc["title_field"] = "id"
    assert validate_entity(doc, KNOWN) == []


def test_lookup_to_the_entity_itself_is_allowed() -> None:
    doc = opportunity()
    doc["fields"].append({"name": "parent", "type": "lookup", "target": "opportunity"})
    assert validate_entity(doc, set()) == [
        FieldError("/fields/3/target", "unknown_entity", "no entity named 'account'")
    ]


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Opportunity", "1deal", "_deal", "deal-x", "a" * 64, ""])
def test_bad_entity_name_syntax_is_reported_at_name(name: str) -> None:
    doc = opportunity()
    doc["name"] = name
    assert ("/name", "pattern") in places(validate_entity(doc, KNOWN))


@pytest.mark.parametrize("name", ["Amount", "2x", "has space", "a" * 64])
def test_bad_field_name_syntax_is_reported_at_field_name(name: str) -> None:
    doc = opportunity()
    doc["fields"][1]["name"] = name
    assert ("/fields/1/name", "pattern") in places(validate_entity(doc, KNOWN))


def test_longest_allowed_name_is_accepted() -> None:
    doc = opportunity()
    doc["fields"][1]["name"] = "a" * 63
    assert validate_entity(doc, KNOWN) == []


@pytest.mark.parametrize(
    "name",
    [
        "id",
        "owner",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "version",
        "deleted_at",
    ],
)
def test_system_field_names_are_reserved(name: str) -> None:
    doc = opportunity()
    doc["fields"][2]["name"] = name
    assert places(validate_entity(doc, KNOWN)) == {("/fields/2/name", "reserved")}


@pytest.mark.parametrize("name", ["mc_x", "sqlite_x", "pg_x", "meta", "me", "user", "null"])
def test_reserved_entity_names_and_prefixes_are_refused(name: str) -> None:
    doc = opportunity()
    doc["name"] = name
    assert places(validate_entity(doc, KNOWN)) == {("/name", "reserved")}


def test_names_that_only_contain_a_reserved_prefix_are_allowed() -> None:
    doc = opportunity()
    doc["name"] = "xmc_meta"
    assert validate_entity(doc, KNOWN) == []


def test_duplicate_field_names_point_at_the_second_and_name_the_first() -> None:
    doc = opportunity()
    doc["fields"].append({"name": "amount", "type": "integer"})
    errors = validate_entity(doc, KNOWN)
    assert places(errors) == {("/fields/5/name", "duplicate")}
    assert "/fields/1" in errors[0].message


# --- types and options -----------------------------------------------------------------------


def test_unknown_type_is_reported_with_the_known_types() -> None:
    errors = validate_field({"name": "x", "type": "money"}, ("fields", 0), KNOWN)
    assert places(errors) == {("/fields/0/type", "unknown_type")}
    assert "decimal" in errors[0].message


@pytest.mark.parametrize(
    ("field", "option"),
    [
        ({"name": "x", "type": "text", "precision": 4}, "precision"),
        ({"name": "x", "type": "integer", "max_length": 4}, "max_length"),
        ({"name": "x", "type": "integer", "scale": 2}, "scale"),
        ({"name": "x", "type": "boolean", "min": 0}, "min"),
        ({"name": "x", "type": "text", "options": [{"value": "a"}]}, "options"),
        ({"name": "x", "type": "text", "target": "account"}, "target"),
        ({"name": "x", "type": "user", "max_length": 3}, "max_length"),
        ({"name": "x", "type": "date", "pattern": "X-{seq:3}"}, "pattern"),
        ({"name": "x", "type": "text", "expression": "1"}, "expression"),
        ({"name": "x", "type": "text", "inherit_sharing": True}, "inherit_sharing"),
        ({"name": "x", "type": "user", "inherit_sharing": True}, "inherit_sharing"),
        (
            {
                "name": "x",
                "type": "picklist",
                "options": [{"value": "a"}],
                "inherit_sharing": False,
            },
            "inherit_sharing",
        ),
    ],
)
def test_options_not_allowed_for_the_type_are_reported(field: dict[str, Any], option: str) -> None:
    assert field_errors(field) == {(f"/fields/0/{option}", "not_allowed")}


def test_unknown_option_is_a_schema_error() -> None:
    assert field_errors({"name": "x", "type": "text", "colour": "red"}) == {
        ("/fields/0", "additionalProperties")
    }


def test_boolean_cannot_be_unique() -> None:
    assert field_errors({"name": "x", "type": "boolean", "unique": True}) == {
        ("/fields/0/unique", "not_allowed")
    }


def test_lookup_to_an_unknown_entity_is_reported_at_target() -> None:
    errors = validate_field({"name": "x", "type": "lookup", "target": "nowhere"}, ("f", 3), KNOWN)
    assert places(errors) == {("/f/3/target", "unknown_entity")}


def test_a_lookup_may_inherit_its_targets_shares() -> None:
    doc = opportunity()
    doc["fields"][3]["inherit_sharing"] = True
    assert validate_entity(doc, KNOWN) == []


def test_inherit_sharing_on_another_type_says_only_lookups_take_it() -> None:
    errors = validate_field({"name": "x", "type": "text", "inherit_sharing": True}, ("f", 2), KNOWN)
    assert [(e.field, e.code, e.message) for e in errors] == [
        (
            "/f/2/inherit_sharing",
            "not_allowed",
            "text fields take no 'inherit_sharing' (only lookup fields do)",
        )
    ]


def test_inherit_sharing_must_be_a_boolean() -> None:
    field = {"name": "x", "type": "lookup", "target": "account", "inherit_sharing": "yes"}
    assert field_errors(field) == {("/fields/0/inherit_sharing", "type")}


def test_lookup_without_target_is_reported() -> None:
    assert field_errors({"name": "x", "type": "lookup"}) == {("/fields/0/target", "required")}


def test_formula_needs_expression_and_result_type_and_takes_no_default() -> None:
    doc = {"name": "x", "type": "formula", "default": 1, "required": True, "unique": True}
    assert field_errors(doc) == {
        ("/fields/0/expression", "required"),
        ("/fields/0/result_type", "required"),
        ("/fields/0/default", "not_allowed"),
        ("/fields/0/required", "not_allowed"),
        ("/fields/0/unique", "not_allowed"),
    }


# --- picklists -------------------------------------------------------------------------------


def test_duplicate_picklist_values_are_reported_with_pointer() -> None:
    doc = {
        "name": "x",
        "type": "picklist",
        "options": [{"value": "a"}, {"value": "b"}, {"value": "a"}, {"value": "b"}],
    }
    assert field_errors(doc) == {
        ("/fields/0/options/2/value", "duplicate"),
        ("/fields/0/options/3/value", "duplicate"),
    }


@pytest.mark.parametrize("type_name", ["picklist", "multipicklist"])
def test_picklist_without_options_is_reported(type_name: str) -> None:
    assert field_errors({"name": "x", "type": type_name}) == {("/fields/0/options", "required")}
    assert field_errors({"name": "x", "type": type_name, "options": []}) == {
        ("/fields/0/options", "required")
    }


def test_empty_option_value_is_a_schema_error() -> None:
    doc = {"name": "x", "type": "picklist", "options": [{"value": ""}]}
    assert field_errors(doc) == {("/fields/0/options/0/value", "minLength")}


# --- defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"name": "x", "type": "decimal", "scale": 2, "default": "1.234"},
        {"name": "x", "type": "decimal", "precision": 4, "scale": 2, "default": 100},
        {"name": "x", "type": "picklist", "options": [{"value": "a"}], "default": "b"},
        {"name": "x", "type": "multipicklist", "options": [{"value": "a"}], "default": ["b"]},
        {"name": "x", "type": "date", "default": "2023-02-29"},
        {"name": "x", "type": "date", "default": "yesterday"},
        {"name": "x", "type": "datetime", "default": "2024-13-01T00:00:00Z"},
        {"name": "x", "type": "integer", "default": "ten"},
        {"name": "x", "type": "integer", "default": True},
        {"name": "x", "type": "integer", "min": 1, "default": 0},
        {"name": "x", "type": "boolean", "default": "maybe"},
        {"name": "x", "type": "text", "max_length": 2, "default": "abc"},
        {"name": "x", "type": "email", "default": "nobody"},
    ],
)
def test_default_that_the_field_cannot_hold_is_reported(field: dict[str, Any]) -> None:
    assert field_errors(field) == {("/fields/0/default", "default")}


def test_default_error_message_says_why() -> None:
    errors = validate_field(
        {"name": "x", "type": "decimal", "scale": 2, "default": "1.234"}, ("fields", 0), KNOWN
    )
    assert "2 decimal places" in errors[0].message


# --- autonumber ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("OPP-{YYYY}", "exactly one"),
        ("{seq:3}-{seq:3}", "exactly one"),
        ("OPP-{seq}", "unknown token {seq}"),
        ("OPP-{HH}-{seq:4}", "unknown token {HH}"),
        ("OPP-{seq:100}", "unknown token"),
    ],
)
def test_autonumber_pattern_errors_are_reported_at_pattern(pattern: str, words: str) -> None:
    errors = validate_field(
        {"name": "x", "type": "autonumber", "pattern": pattern}, ("fields", 0), KNOWN
    )
    assert places(errors) == {("/fields/0/pattern", "pattern")}
    assert words in errors[0].message


def test_autonumber_without_pattern_is_reported() -> None:
    assert field_errors({"name": "x", "type": "autonumber"}) == {("/fields/0/pattern", "required")}


# --- numbers and bounds ----------------------------------------------------------------------


def test_scale_greater_than_precision_is_reported_at_scale() -> None:
    assert field_errors({"name": "x", "type": "decimal", "precision": 4, "scale": 5}) == {
        ("/fields/0/scale", "range")
    }


def test_scale_greater_than_default_precision_is_reported() -> None:
    assert field_errors({"name": "x", "type": "decimal", "scale": 18, "precision": 10}) == {
        ("/fields/0/scale", "range")
    }


@pytest.mark.parametrize(
    "field",
    [
        {"name": "x", "type": "integer", "min": 10, "max": 1},
        {"name": "x", "type": "decimal", "min": "2.5", "max": "2.25"},
        {"name": "x", "type": "date", "min": "2024-02-01", "max": "2024-01-31"},
        {
            "name": "x",
            "type": "datetime",
            "min": "2024-01-01T10:00:00Z",
            "max": "2024-01-01T09:59:59Z",
        },
    ],
)
def test_min_greater_than_max_is_reported_at_min(field: dict[str, Any]) -> None:
    assert ("/fields/0/min", "range") in field_errors(field)


def test_equal_min_and_max_are_allowed() -> None:
    assert field_errors({"name": "x", "type": "integer", "min": 3, "max": 3}) == set()


def test_min_that_is_not_a_value_of_the_type_is_reported() -> None:
    assert field_errors({"name": "x", "type": "date", "min": "soon", "max": 5}) == {
        ("/fields/0/min", "min"),
        ("/fields/0/max", "max"),
    }


def test_precision_outside_schema_range_is_reported() -> None:
    assert field_errors({"name": "x", "type": "decimal", "precision": 39}) == {
        ("/fields/0/precision", "maximum")
    }


# --- labels ----------------------------------------------------------------------------------


def test_entity_label_without_english_is_reported() -> None:
    doc = opportunity()
    doc["label"] = {"zh-CN": "商机"}
    assert places(validate_entity(doc, KNOWN)) == {("/label", "required")}


def test_field_label_without_english_is_reported_at_field_label() -> None:
    doc = opportunity()
    doc["fields"][0]["label"] = {"de": "Name"}
    assert places(validate_entity(doc, KNOWN)) == {("/fields/0/label", "required")}


def test_option_label_with_bad_locale_key_is_reported() -> None:
    doc = opportunity()
    doc["fields"][2]["options"][0]["label"] = {"en": "Qualify", "English": "x"}
    errors = validate_entity(doc, KNOWN)
    assert [e.field for e in errors] == ["/fields/2/options/0/label"]
    assert "English" in errors[0].message


def test_entity_without_label_is_reported() -> None:
    doc = opportunity()
    del doc["label"]
    assert places(validate_entity(doc, KNOWN)) == {("", "required")}


# --- title field and document shape ----------------------------------------------------------


def test_unknown_title_field_is_reported() -> None:
    doc = opportunity()
    doc["title_field"] = "subject"
    assert places(validate_entity(doc, KNOWN)) == {("/title_field", "unknown_field")}


def test_unknown_top_level_key_is_reported() -> None:
    doc = opportunity()
    doc["colour"] = "blue"
    assert places(validate_entity(doc, KNOWN)) == {("", "additionalProperties")}


@pytest.mark.parametrize("doc", [None, [], "opportunity", 3])
def test_non_object_document_is_reported_not_raised(doc: Any) -> None:
    assert places(validate_entity(doc, KNOWN)) == {("", "type")}


def test_fields_that_are_not_a_list_are_reported() -> None:
    doc = opportunity()
    doc["fields"] = {"name": {"type": "text"}}
    assert ("/fields", "type") in places(validate_entity(doc, KNOWN))


def test_field_that_is_not_an_object_is_reported_at_its_index() -> None:
    doc = opportunity()
    doc["fields"].insert(1, "amount")
    assert places(validate_entity(doc, KNOWN)) == {("/fields/1", "type")}


def test_field_schema_errors_are_reported_once() -> None:
    doc = opportunity()
    doc["fields"][0]["required"] = "yes"
    errors = validate_entity(doc, KNOWN)
    assert [(e.field, e.code) for e in errors] == [("/fields/0/required", "type")]


def test_pointer_escapes_tilde_and_slash() -> None:
    assert pointer("fields", 0, "a/b~c") == "/fields/0/a~1b~0c"
    assert pointer() == ""


# --- all at once -----------------------------------------------------------------------------


def test_every_error_in_one_document_is_reported_at_once() -> None:
    doc = opportunity()
    doc["name"] = "mc_deal"
    doc["title_field"] = "subject"
    doc["plural_label"] = {"fr": "Affaires"}
    doc["fields"] = [
        {"name": "Bad Name", "type": "text"},
        {"name": "owner", "type": "text"},
        {"name": "kind", "type": "money"},
        {"name": "size", "type": "integer", "max_length": 3, "min": 9, "max": 1},
        {"name": "ref", "type": "lookup", "target": "nowhere"},
        {"name": "price", "type": "decimal", "precision": 3, "scale": 4},
        {"name": "stage", "type": "picklist", "options": [{"value": "a"}, {"value": "a"}]},
        {"name": "tags", "type": "multipicklist"},
        {"name": "colour", "type": "picklist", "options": [{"value": "red"}], "default": "blue"},
        {"name": "born", "type": "date", "default": "2023-02-29"},
        {"name": "num", "type": "autonumber", "pattern": "N-{YYYY}"},
        {"name": "size", "type": "text"},
    ]
    assert places(validate_entity(doc, KNOWN)) == {
        ("/name", "reserved"),
        ("/plural_label", "required"),
        ("/title_field", "unknown_field"),
        ("/fields/0/name", "pattern"),
        ("/fields/1/name", "reserved"),
        ("/fields/2/type", "unknown_type"),
        ("/fields/3/max_length", "not_allowed"),
        ("/fields/3/min", "range"),
        ("/fields/4/target", "unknown_entity"),
        ("/fields/5/scale", "range"),
        ("/fields/6/options/1/value", "duplicate"),
        ("/fields/7/options", "required"),
        ("/fields/8/default", "default"),
        ("/fields/9/default", "default"),
        ("/fields/10/pattern", "pattern"),
        ("/fields/11/name", "duplicate"),
    }


def test_validation_does_not_modify_the_document() -> None:
    doc = opportunity()
    doc["fields"].append({"name": "x", "type": "decimal", "default": "1.239", "scale": 2})
    before = copy.deepcopy(doc)
    validate_entity(doc, KNOWN)
    assert doc == before


# --- validation rules and expressions --------------------------------------------------------


def test_validation_rule_names_must_be_unique_and_fields_known() -> None:
    doc = opportunity()
    doc["validation_rules"] = [
        {"name": "r", "condition": "amount > 0", "message": {"en": "m"}, "field": "amount"},
        {"name": "r", "condition": "amount > 1", "message": {"en": "m"}, "field": "nope"},
    ]
    assert places(validate_entity(doc, KNOWN)) == {
        ("/validation_rules/1/name", "duplicate"),
        ("/validation_rules/1/field", "unknown_field"),
    }


def test_a_validation_rule_runs_a_condition_with_a_message_or_a_registered_hook() -> None:
    doc = opportunity()
    doc["validation_rules"] = [
        {"name": "checked", "hook": "acme.serial_checksum", "field": "name", "when": "true"},
        {"name": "worded", "hook": "acme.serial_checksum", "message": {"en": "Bad serial"}},
        {"name": "both", "hook": "acme.serial_checksum", "condition": "amount > 0"},
        {"name": "unknown", "hook": "acme.gone"},
        {"name": "badly_named", "hook": "Acme Serial"},
        {"name": "neither", "message": {"en": "m"}},
        {"name": "no_message", "condition": "amount > 0"},
    ]
    registered = ("acme.serial_checksum", "crm.phone")
    assert places(validate_entity(doc, KNOWN, validators=registered)) == {
        ("/validation_rules/2/condition", "exclusive"),
        ("/validation_rules/3/hook", "unknown_validator"),
        ("/validation_rules/4/hook", "pattern"),
        ("/validation_rules/5", "required"),
        ("/validation_rules/6", "required"),
    }
    [unknown] = [
        e for e in validate_entity(doc, KNOWN, validators=registered) if "gone" in e.message
    ]
    assert "registered: acme.serial_checksum, crm.phone" in unknown.message
    # Where the server's validators are not at hand, their names are not judged.
    assert ("/validation_rules/3/hook", "unknown_validator") not in places(
        validate_entity(doc, KNOWN)
    )


def test_expression_checker_sees_every_expression_with_its_pointer_and_expectation() -> None:
    seen: list[tuple[str, str, str | None, bool]] = []

    def checker(doc: dict[str, Any], site: ExpressionSite) -> list[FieldError]:
        seen.append((site.expression, site.pointer, site.expect, site.sees_change))
        return [FieldError(site.pointer, "expression", "bad")] if site.expression == "bad" else []

    doc = opportunity()
    doc["fields"].append(
        {"name": "f", "type": "formula", "expression": "bad", "result_type": "text"}
    )
    doc["fields"].append(
        {"name": "g", "type": "date", "default_expr": "today()", "visible_if": "amount > 0"}
    )
    doc["validation_rules"] = [
        {"name": "r", "condition": "amount > 0", "when": "bad", "message": {"en": "m"}}
    ]
    errors = validate_entity(doc, KNOWN, checker)
    assert seen == [
        ("bad", "/fields/5/expression", "text", False),
        ("today()", "/fields/6/default_expr", "date", False),
        ("amount > 0", "/fields/6/visible_if", "boolean", False),
        ("amount > 0", "/validation_rules/0/condition", "boolean", True),
        ("bad", "/validation_rules/0/when", "boolean", True),
    ]
    assert places(errors) == {
        ("/fields/5/expression", "expression"),
        ("/validation_rules/0/when", "expression"),
    }


def test_default_and_default_expr_together_are_refused() -> None:
    doc = opportunity()
    doc["fields"].append(
        {"name": "due", "type": "date", "default": "2030-01-01", "default_expr": "today()"}
    )
    assert ("/fields/5/default_expr", "conflict") in places(validate_entity(doc, KNOWN))


def test_autonumbers_take_no_conditions_or_default_expressions() -> None:
    doc = opportunity()
    doc["fields"].append(
        {
            "name": "no",
            "type": "autonumber",
            "pattern": "N-{seq:3}",
            "required_if": "true",
            "visible_if": "true",
        }
    )
    assert places(validate_entity(doc, KNOWN)) == {("/fields/5/required_if", "not_allowed")}
