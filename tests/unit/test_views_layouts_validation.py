"""The validators of assignment rules, list views and form layouts, and the derived layout:
every problem at its JSON Pointer, schema errors and errors of meaning together."""

from __future__ import annotations

import copy
from typing import Any

from metacrm.metadata.approvals import References
from metacrm.metadata.assignment_rules import (
    ASSIGNMENT_RULE,
    AssignmentRuleDef,
    validate_assignment_rule,
)
from metacrm.metadata.form_layouts import (
    FORM_LAYOUT,
    FormLayoutDef,
    derived_layout,
    needed_on_create,
    validate_form_layout,
)
from metacrm.metadata.labels import with_label_maps
from metacrm.metadata.list_views import LIST_VIEW, ListViewDef, parse_sort, validate_list_view
from metacrm.metadata.model import EntityDef
from metacrm.runtime.assignment import next_position
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker

ACCOUNT = EntityDef.from_doc(
    {
        "name": "account",
        "label": {"en": "Account", "zh-CN": "客户"},
        "plural_label": {"en": "Accounts", "zh-CN": "客户"},
        "title_field": "name",
        "fields": [
            {"name": "name", "type": "text", "required": True},
            {"name": "region", "type": "picklist", "options": [{"value": "north"}]},
        ],
    }
)
TICKET = EntityDef.from_doc(
    {
        "name": "ticket",
        "label": {"en": "Ticket"},
        "plural_label": {"en": "Tickets"},
        "title_field": "subject",
        "fields": [
            {"name": "subject", "type": "text", "required": True},
            {"name": "number", "type": "autonumber", "pattern": "T-{seq:4}"},
            {"name": "priority", "type": "picklist", "options": [{"value": "P1"}, {"value": "P2"}]},
            {"name": "tags", "type": "multipicklist", "options": [{"value": "vip"}]},
            {"name": "status", "type": "picklist", "default": "new", "required": True,
             "options": [{"value": "new"}, {"value": "closed"}]},
            {"name": "account", "type": "lookup", "target": "account"},
            {"name": "billing", "type": "lookup", "target": "account"},
            {"name": "agent", "type": "user"},
            {"name": "notes", "type": "textarea"},
            {"name": "hours", "type": "formula", "result_type": "integer", "expression": "1"},
        ],
    }
)  # fmt: skip
ENTITIES = {"account": ACCOUNT, "ticket": TICKET}
CHECK = expression_checker(Catalog(stamp=0, entities=ENTITIES))
USERS = {"u1", "u2"}
REFS = References(ENTITIES, {"agent"}, lambda user: user in USERS, CHECK)


def codes(errors: list[Any]) -> dict[str, str]:
    return {e.field: e.code for e in errors}


# The designers take a plain string as a label's English text before validating; so do these.
def rule_errors(doc: Any, refs: References, others: dict[str, Any]) -> list[Any]:
    return validate_assignment_rule(with_label_maps(ASSIGNMENT_RULE, doc), refs, others)


def view_errors(doc: Any, entities: Any, others: dict[str, Any], check: Any) -> list[Any]:
    return validate_list_view(with_label_maps(LIST_VIEW, doc), entities, others, check)


def layout_errors(doc: Any, entities: Any, others: dict[str, Any], check: Any) -> list[Any]:
    return validate_form_layout(with_label_maps(FORM_LAYOUT, doc), entities, others, check)


# ---- assignment rules ---------------------------------------------------------------------


def rule_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "tickets",
        "label": {"en": "Tickets"},
        "entity": "ticket",
        "rules": [
            {"condition": 'priority == "P1"', "users": ["u1", "u2"]},
            {"role": "agent", "method": "least_loaded", "open_condition": 'status != "closed"'},
        ],
    }
    doc.update(changes)
    return doc


def test_a_valid_assignment_rule_has_no_errors() -> None:
    assert rule_errors(rule_doc(), REFS, {}) == []
    assert rule_errors(rule_doc(field="agent", fallback={"role": "admin"}), REFS, {}) == []


def test_every_problem_of_an_assignment_rule_is_at_its_pointer_at_once() -> None:
    broken = rule_doc(
        field="subject",
        when="sometimes",
        rules=[
            {"condition": "priority ==", "users": ["u1", "ghost"]},
            {"role": "nobody", "open_condition": 'status == "new"'},
            {"users": ["u1"], "role": "agent"},
            {},
        ],
        fallback={"role": "agent", "method": "least_loaded", "open_condition": "now() > 1"},
    )
    found = codes(rule_errors(broken, REFS, {}))
    assert found == {
        "/when": "enum",
        "/field": "not_user_field",
        "/rules/0/condition": "expression",
        "/rules/0/users/1": "unknown_user",
        "/rules/1/role": "unknown_role",
        "/rules/1/open_condition": "unused",
        "/rules/2": "queue",
        "/rules/3": "queue",
        "/fallback/open_condition": "expression",
    }


def test_a_least_loaded_open_condition_must_run_in_sql() -> None:
    doc = rule_doc(rules=[{"users": ["u1"], "method": "least_loaded",
                           "open_condition": "account.name == \"x\""}])  # fmt: skip
    assert rule_errors(doc, REFS, {}) == []
    unknown = rule_doc(rules=[{"users": ["u1"], "condition": "ghost == 1"}])
    assert codes(rule_errors(unknown, REFS, {})) == {"/rules/0/condition": "expression"}


def test_one_active_rule_assigns_a_field_of_an_entity() -> None:
    other = AssignmentRuleDef.from_doc(rule_doc(name="older"))
    found = rule_errors(rule_doc(), REFS, {"older": other})
    assert codes(found) == {"/field": "duplicate"} and "older" in found[0].message
    # An inactive rule, another field, or the rule itself being replaced don't count.
    assert rule_errors(rule_doc(active=False), REFS, {"older": other}) == []
    assert rule_errors(rule_doc(field="agent"), REFS, {"older": other}) == []
    same = AssignmentRuleDef.from_doc(rule_doc())
    assert rule_errors(rule_doc(), REFS, {"tickets": same}) == []
    idle = AssignmentRuleDef.from_doc(rule_doc(name="older", active=False))
    assert rule_errors(rule_doc(), REFS, {"older": idle}) == []


def test_an_unknown_entity_is_said_once_and_a_non_object_is_a_schema_error() -> None:
    assert codes(rule_errors(rule_doc(entity="ghost"), REFS, {})) == {"/entity": "unknown_entity"}
    assert codes(rule_errors([], REFS, {})) == {"": "type"}


def test_queues_come_in_order_with_the_fallback_last() -> None:
    rule = AssignmentRuleDef.from_doc(rule_doc(fallback={"users": ["u2"]}))
    assert [q.key for q in rule.queues] == ["0", "1", "fallback"]
    assert [q.method for q in rule.queues] == ["round_robin", "least_loaded", "round_robin"]
    assert rule.field == "owner" and rule.when == "create" and rule.active


def test_a_queue_goes_on_after_its_last_user_or_from_where_they_stood() -> None:
    queue = ["a", "b", "c"]
    assert next_position(queue, None, 0) == 0
    assert next_position(queue, "a", 0) == 1
    assert next_position(queue, "c", 2) == 0
    # "b" left the queue: "c" stands where "b" stood and goes next.
    assert next_position(["a", "c"], "b", 1) == 1
    # The last one left the end of the queue: start again.
    assert next_position(["a", "b"], "c", 2) == 0


# ---- list views --------------------------------------------------------------------------


def view_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "open_tickets",
        "label": "Open tickets",
        "entity": "ticket",
        "columns": ["number", "subject", "account.name", "owner", "hours"],
        "filter": 'status != "closed"',
        "sort": "-created_at,subject",
        "page_size": 25,
        "quick_filters": ["priority", "tags"],
    }
    doc.update(changes)
    return doc


def test_a_valid_list_view_has_no_errors() -> None:
    assert view_errors(view_doc(default=True), ENTITIES, {}, CHECK) == []


def test_every_problem_of_a_list_view_is_at_its_pointer_at_once() -> None:
    broken = view_doc(
        columns=["subject", "ghost", "priority.name", "account.ghost", "deleted_at", "subject"],
        filter="len(notes) > ",
        sort="-tags,ghost,subject,subject",
        page_size=501,
        quick_filters=["subject", "nothing"],
        shared=False,
    )
    errors = view_errors(broken, ENTITIES, {}, CHECK)
    found = [(e.field, e.code) for e in errors]
    assert ("/columns", "uniqueItems") in found
    assert ("/page_size", "maximum") in found
    assert ("/shared", "not_shared") in found
    # The schema finds the list of columns broken (a repeat): its items aren't judged.
    assert not any(f.startswith("/columns/") for f, _ in found)
    assert ("/filter", "expression") in found
    assert [c for f, c in found if f == "/sort"] == ["unsortable", "unknown_field", "duplicate"]
    assert ("/quick_filters/0", "not_picklist") in found
    assert ("/quick_filters/1", "unknown_field") in found
    columns = view_errors(view_doc(columns=broken["columns"][:-1]), ENTITIES, {}, CHECK)
    assert codes(columns) == {
        "/columns/1": "unknown_field",
        "/columns/2": "not_lookup",
        "/columns/3": "unknown_field",
        "/columns/4": "unknown_field",
    }


def test_a_list_view_filter_must_run_in_sql() -> None:
    found = view_errors(view_doc(filter="old.status == status"), ENTITIES, {}, CHECK)
    assert codes(found) == {"/filter": "expression"}


def test_one_list_view_per_entity_is_its_default() -> None:
    first = ListViewDef.from_doc(view_doc(name="first", default=True))
    found = view_errors(view_doc(default=True), ENTITIES, {"first": first}, CHECK)
    assert codes(found) == {"/default": "duplicate_default"} and "first" in found[0].message
    assert view_errors(view_doc(default=False), ENTITIES, {"first": first}, CHECK) == []
    other_entity = view_doc(entity="account", columns=["name"], filter="name != \"\"", sort="name",
                            quick_filters=["region"], default=True)  # fmt: skip
    assert view_errors(other_entity, ENTITIES, {"first": first}, CHECK) == []


def test_a_sort_is_parsed_into_fields_and_directions() -> None:
    assert parse_sort("-amount,name") == (("amount", True), ("name", False))
    assert parse_sort(None) == ()


# ---- form layouts -------------------------------------------------------------------------


def layout_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "ticket_page",
        "entity": "ticket",
        "sections": [
            {"key": "main", "label": "Main", "columns": 2, "fields": ["subject", "priority"]},
            {"key": "more", "label": {"en": "More"}, "columns": 1, "fields": ["notes"],
             "collapsed": True, "visible_if": 'priority == "P1"'},
        ],
        "related_lists": [],
        "default": True,
    }  # fmt: skip
    doc.update(changes)
    return doc


ACCOUNT_LAYOUT = {
    "name": "account_page",
    "entity": "account",
    "sections": [{"key": "main", "label": "Main", "fields": ["name"]}],
    "related_lists": [
        {"entity": "ticket", "lookup": "account", "columns": ["subject", "priority"],
         "sort": "-created_at", "limit": 10, "label": "Tickets"},
    ],
}  # fmt: skip


def test_a_valid_layout_may_leave_fields_out_but_not_required_ones() -> None:
    assert layout_errors(layout_doc(), ENTITIES, {}, CHECK) == []
    assert layout_errors(ACCOUNT_LAYOUT, ENTITIES, {}, CHECK) == []
    # status is required but has a default: a create can do without it.
    assert [f.name for f in needed_on_create(TICKET)] == ["subject"]
    without = layout_doc()
    without["sections"][0]["fields"] = ["priority"]
    found = layout_errors(without, ENTITIES, {}, CHECK)
    assert codes(found) == {"/sections": "required_field"} and "subject" in found[0].message


def test_every_problem_of_a_layout_is_at_its_pointer_at_once() -> None:
    broken = layout_doc(
        sections=[
            {"key": "main", "label": "Main", "columns": 3, "fields": ["subject", "ghost"]},
            {"key": "main", "label": "Again", "fields": ["subject", "deleted_at"],
             "visible_if": "priority +"},
        ],
        related_lists=[
            {"entity": "ghost", "lookup": "x"},
            {"entity": "account", "lookup": "name", "columns": ["nope"], "sort": "ghost"},
        ],
    )  # fmt: skip
    assert codes(layout_errors(broken, ENTITIES, {}, CHECK)) == {
        "/sections/0/columns": "enum",
        "/sections/0/fields/1": "unknown_field",
        "/sections/1/key": "duplicate",
        "/sections/1/fields/0": "duplicate",
        "/sections/1/fields/1": "unknown_field",
        "/sections/1/visible_if": "expression",
        "/related_lists/0/entity": "unknown_entity",
        "/related_lists/1/lookup": "not_lookup",
        "/related_lists/1/columns/0": "unknown_field",
        "/related_lists/1/sort": "unknown_field",
    }


def test_a_related_list_is_named_once_and_must_point_here() -> None:
    twice = copy.deepcopy(ACCOUNT_LAYOUT)
    twice["related_lists"].append({"entity": "ticket", "lookup": "account"})
    assert codes(layout_errors(twice, ENTITIES, {}, CHECK)) == {"/related_lists/1": "duplicate"}
    wrong = copy.deepcopy(ACCOUNT_LAYOUT)
    wrong["related_lists"] = [{"entity": "ticket", "lookup": "agent"}]
    assert codes(layout_errors(wrong, ENTITIES, {}, CHECK)) == {
        "/related_lists/0/lookup": "not_lookup"
    }


def test_one_layout_per_entity_is_its_default() -> None:
    first = FormLayoutDef.from_doc(layout_doc(name="first"))
    found = layout_errors(layout_doc(), ENTITIES, {"first": first}, CHECK)
    assert codes(found) == {"/default": "duplicate_default"}
    assert layout_errors(layout_doc(default=False), ENTITIES, {"first": first}, CHECK) == []


def test_the_derived_layout_places_every_field_in_order_and_the_system_fields_apart() -> None:
    layout = derived_layout(TICKET, ENTITIES.values())
    assert layout.derived and layout.is_default and layout.entity == "ticket"
    details, system = layout.sections
    assert details.fields == tuple(f.name for f in TICKET.fields)
    assert details.label["zh-CN"] and system.label == {"en": "System", "zh-CN": "系统信息"}
    assert system.fields == ("owner", "created_at", "created_by", "updated_at", "updated_by")
    assert system.collapsed and not details.collapsed
    assert layout.related_lists == ()
    # A derived layout is a valid layout.
    assert layout_errors(dict(layout.doc), ENTITIES, {}, CHECK) == []


def test_the_derived_layout_lists_the_records_that_look_an_entity_up() -> None:
    layout = derived_layout(ACCOUNT, ENTITIES.values())
    related = [(r.entity, r.lookup, dict(r.label or {}), r.columns) for r in layout.related_lists]
    columns = ("subject", "number", "priority", "status")
    assert related == [
        ("ticket", "account", {"en": "Tickets (Account)"}, columns),
        ("ticket", "billing", {"en": "Tickets (Billing)"}, columns),
    ]
    assert layout_errors(dict(layout.doc), ENTITIES, {}, CHECK) == []
    bare = EntityDef.from_doc({"name": "bare", "label": {"en": "Bare"}})
    assert [s.key for s in derived_layout(bare).sections] == ["system"]
