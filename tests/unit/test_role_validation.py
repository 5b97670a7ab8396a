"""The role document validator: every problem is reported, each at its JSON Pointer; and what a
valid document means (`RoleDef`)."""

from __future__ import annotations

from typing import Any

import pytest

from metacrm.metadata.model import EntityDef
from metacrm.metadata.roles import RoleDef, role_errors, validate_role
from metacrm.runtime.catalog import Catalog
from metacrm.runtime.rule_checks import expression_checker

ACCOUNT = EntityDef.from_doc(
    {
        "name": "account",
        "label": {"en": "Account"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "industry", "type": "picklist", "options": [{"value": "energy"}]},
            {"name": "employees", "type": "integer"},
            {"name": "phone", "type": "phone"},
            {"name": "email", "type": "email"},
            {"name": "website", "type": "url"},
            {"name": "notes", "type": "textarea"},
            {"name": "founded", "type": "date"},
            {
                "name": "score",
                "type": "formula",
                "expression": "employees * 2",
                "result_type": "integer",
            },
        ],
        "hidden_fields": [{"name": "legacy", "type": "text"}],
    }
)
OPPORTUNITY = EntityDef.from_doc(
    {
        "name": "opportunity",
        "label": {"en": "Opportunity"},
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
            {"name": "account", "type": "lookup", "target": "account"},
        ],
    }
)
ENTITIES = {"account": ACCOUNT, "opportunity": OPPORTUNITY}
CHECK = expression_checker(Catalog(0, dict(ENTITIES)))


def rep() -> dict[str, Any]:
    """A valid role using every part of the document."""
    return {
        "name": "rep",
        "label": {"en": "Sales rep", "zh-CN": "销售"},
        "description": "Sells things.",
        "entities": {
            "account": {
                "actions": {
                    "read": "org_unit_tree",
                    "create": "own",
                    "update": "subordinates",
                    "delete": "own",
                    "export": "org_unit",
                    "import": "own",
                    "transfer": "own",
                    "share": "all",
                },
                "record_rules": [
                    {"name": "energy", "condition": 'industry == "energy"', "effect": "widen"},
                    {
                        "name": "mine",
                        "condition": "owner == $user.id or employees > 10",
                        "effect": "narrow",
                        "actions": ["update", "delete"],
                    },
                ],
                "fields": {
                    "phone": {"access": "masked"},
                    "email": {"access": "masked", "mask": "email"},
                    "website": {"access": "masked", "mask": {"keep_start": 8, "char": "#"}},
                    "notes": {"access": "hidden", "except_owner": True},
                    "employees": {"access": "read_only", "except_owner": False},
                    "founded": {"access": "hidden"},
                },
            },
            "opportunity": {
                "actions": {"read": "own"},
                "record_rules": [
                    {"name": "big", "condition": "account.employees > 100", "effect": "widen"}
                ],
            },
        },
    }


def errors_of(doc: Any) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in validate_role(doc, ENTITIES, CHECK)}


def test_a_valid_role_has_no_errors() -> None:
    assert validate_role(rep(), ENTITIES, CHECK) == []
    assert validate_role({"name": "nobody", "label": {"en": "Nobody"}}, ENTITIES, CHECK) == []
    assert validate_role({**rep(), "version": 3}, ENTITIES, CHECK) == []


def change(edit: Any) -> dict[str, Any]:
    doc = rep()
    edit(doc)
    return doc


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


A = ("entities", "account")
RULE0 = (*A, "record_rules", 0)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set(("name",), "admin"), {("/name", "reserved")}),
        (_set(("name",), "Sales Rep"), {("/name", "pattern")}),
        (_set(("label",), "Rep"), {("/label", "type")}),
        (_set(("extra",), 1), {("", "additionalProperties")}),
        (
            _set(("entities", "lead"), {"actions": {"read": "all"}}),
            {("/entities/lead", "unknown_entity")},
        ),
        (_set((*A, "actions", "read"), "everything"), {("/entities/account/actions/read", "enum")}),
        (_set((*A, "actions", "approve"), "all"), {("/entities/account/actions", "enum")}),
        (_set((*A, "permissions"), {}), {("/entities/account", "additionalProperties")}),
        (
            _set((*A, "fields", "nope"), {"access": "hidden"}),
            {("/entities/account/fields/nope", "unknown_field")},
        ),
        (
            _set((*A, "fields", "legacy"), {"access": "hidden"}),
            {("/entities/account/fields/legacy", "unknown_field")},
        ),
        (
            _set((*A, "fields", "owner"), {"access": "hidden"}),
            {("/entities/account/fields/owner", "reserved")},
        ),
        (
            _set((*A, "fields", "employees"), {"access": "masked"}),
            {("/entities/account/fields/employees/access", "not_maskable")},
        ),
        (
            _set((*A, "fields", "founded"), {"access": "masked"}),
            {("/entities/account/fields/founded/access", "not_maskable")},
        ),
        (
            _set((*A, "fields", "notes"), {"access": "hidden", "mask": "email"}),
            {("/entities/account/fields/notes/mask", "unused")},
        ),
        (
            _set((*A, "fields", "phone"), {"access": "masked", "mask": "phone"}),
            {("/entities/account/fields/phone/mask", "oneOf")},
        ),
        (
            _set((*A, "fields", "phone"), {"access": "masked", "mask": {"keep_start": -1}}),
            {("/entities/account/fields/phone/mask", "oneOf")},
        ),
        (
            _set((*A, "fields", "employees"), {"access": "read_only", "except_owner": True}),
            {("/entities/account/fields/employees/except_owner", "unused")},
        ),
        (
            _set(
                (*A, "fields", "name"),
                {"access": "read_only", "mask": "email", "except_owner": True},
            ),
            {
                ("/entities/account/fields/name/mask", "unused"),
                ("/entities/account/fields/name/except_owner", "unused"),
            },
        ),
        (
            _set((*A, "fields", "employees"), {"access": "masked", "except_owner": True}),
            {("/entities/account/fields/employees/access", "not_maskable")},
        ),
        (
            _set((*A, "fields", "phone"), {"access": "masked", "except_owner": 1}),
            {("/entities/account/fields/phone/except_owner", "type")},
        ),
        (
            _set((*A, "fields", "phone"), {"access": "masked", "except_owner": "true"}),
            {("/entities/account/fields/phone/except_owner", "type")},
        ),
        (
            _set((*A, "fields", "phone"), {"access": "writable"}),
            {("/entities/account/fields/phone/access", "enum")},
        ),
        (
            _set((*A, "fields", "phone"), {}),
            {("/entities/account/fields/phone", "required")},
        ),
        (
            _set((*RULE0, "condition"), "employees + 1"),
            {("/entities/account/record_rules/0/condition", "expression")},
        ),
        (
            _set((*RULE0, "condition"), "industry == "),
            {("/entities/account/record_rules/0/condition", "expression")},
        ),
        (
            _set((*RULE0, "condition"), "revenue > 1"),
            {("/entities/account/record_rules/0/condition", "expression")},
        ),
        (
            _set((*RULE0, "condition"), 'old.industry == "energy"'),
            {("/entities/account/record_rules/0/condition", "expression")},
        ),
        (
            _set((*RULE0, "condition"), "changed(industry)"),
            {("/entities/account/record_rules/0/condition", "expression")},
        ),
        (
            _set(("entities", "opportunity", "record_rules", 0, "condition"), "account.score > 1"),
            {("/entities/opportunity/record_rules/0/condition", "not_sql")},
        ),
        (
            _set((*RULE0, "condition"), ""),
            {("/entities/account/record_rules/0/condition", "minLength")},
        ),
        (
            _set((*RULE0, "effect"), "replace"),
            {("/entities/account/record_rules/0/effect", "enum")},
        ),
        (_set((*RULE0, "actions"), []), {("/entities/account/record_rules/0/actions", "minItems")}),
        (
            _set((*RULE0, "actions"), ["read", "fly"]),
            {("/entities/account/record_rules/0/actions/1", "enum")},
        ),
        (
            _set((*A, "record_rules", 1, "name"), "energy"),
            {("/entities/account/record_rules/1/name", "duplicate")},
        ),
        (_set(("description",), "a\x00b"), {("/description", "format")}),
    ],
    ids=[
        "admin-reserved",
        "name-pattern",
        "label-not-object",
        "unknown-top-level-key",
        "unknown-entity",
        "bad-scope",
        "unknown-action",
        "unknown-entity-key",
        "unknown-field",
        "hidden-entity-field",
        "system-field",
        "masked-integer",
        "masked-date",
        "mask-on-hidden",
        "unknown-mask",
        "negative-keep",
        "except-owner-on-read-only",
        "except-owner-and-mask-on-read-only",
        "except-owner-on-unmaskable",
        "except-owner-number",
        "except-owner-string",
        "unknown-access",
        "access-missing",
        "rule-not-boolean",
        "rule-syntax",
        "rule-unknown-field",
        "rule-old",
        "rule-changed",
        "rule-looked-up-formula",
        "rule-empty",
        "rule-effect",
        "rule-no-actions",
        "rule-unknown-action",
        "rule-duplicate-name",
        "nul",
    ],
)
def test_each_problem_is_reported_at_its_pointer(edit: Any, expected: set[tuple[str, str]]) -> None:
    assert errors_of(change(edit)) == expected


def test_every_problem_is_reported_at_once() -> None:
    doc = rep()
    doc["name"] = "admin"
    account = doc["entities"]["account"]
    account["record_rules"][0]["condition"] = "old.name == name"
    account["record_rules"][1]["condition"] = "employees"
    account["fields"]["employees"] = {"access": "masked"}
    account["fields"]["ghost"] = {"access": "hidden"}
    doc["entities"]["lead"] = {"actions": {"read": "all"}}
    assert errors_of(doc) == {
        ("/name", "reserved"),
        ("/entities/account/record_rules/0/condition", "expression"),
        ("/entities/account/record_rules/1/condition", "expression"),
        ("/entities/account/fields/employees/access", "not_maskable"),
        ("/entities/account/fields/ghost", "unknown_field"),
        ("/entities/lead", "unknown_entity"),
    }


def test_expression_errors_say_what_is_wrong_and_where() -> None:
    doc = change(_set((*RULE0, "condition"), "industy == 'energy'"))
    [error] = validate_role(doc, ENTITIES, CHECK)
    assert error.field == "/entities/account/record_rules/0/condition"
    assert "industy" in error.message and "industry" in error.message  # a close match
    old = validate_role(change(_set((*RULE0, "condition"), "old.name == name")), ENTITIES, CHECK)
    assert "old.name" in old[0].message


@pytest.mark.parametrize("doc", [None, [], "rep", 1, {"name": "rep"}, {"label": {"en": "x"}}])
def test_documents_that_are_not_roles_are_refused_without_crashing(doc: Any) -> None:
    assert validate_role(doc, ENTITIES, CHECK)


def test_without_an_expression_checker_conditions_are_not_checked() -> None:
    doc = change(_set((*RULE0, "condition"), "this is not a rule"))
    assert validate_role(doc, ENTITIES) == []


def test_role_documents_become_role_defs() -> None:
    role = RoleDef.from_doc(rep(), version=4)
    assert role.name == "rep" and role.version == 4 and role.label["zh-CN"] == "销售"
    assert role.on("lead") is None
    account = role.on("account")
    assert account is not None
    assert account.actions["read"] == "org_unit_tree" and account.actions["share"] == "all"
    assert [r.name for r in account.rules("read", "widen")] == ["energy"]
    assert account.rules("read", "narrow") == []
    assert [r.name for r in account.rules("update", "narrow")] == ["mine"]
    assert [r.name for r in account.rules("delete", "widen")] == ["energy"]
    assert account.read_level("phone") == account.read_level("email") == 1
    assert account.read_level("notes") == 0
    assert account.read_level("employees") == account.read_level("name") == 2
    assert account.fields["website"].mask == {"keep_start": 8, "char": "#"}
    assert account.fields["email"].mask == "email" and account.fields["phone"].mask is None
    assert not account.writable("employees") and not account.writable("phone")
    assert account.writable("name")
    # notes: hidden except on the reader's own records, where it is free to write too.
    assert account.read_level("notes", owned=True) == 2
    assert account.writable("notes", owned=True) and not account.writable("notes")
    assert account.read_level("phone", owned=True) == 1
    assert not account.writable("phone", owned=True)
    assert account.read_level("employees", owned=True) == 2  # read_only: visible anyway
    assert not account.writable("employees", owned=True)
    assert account.spares_owners
    assert not RoleDef.from_doc(rep()).on("opportunity").spares_owners  # type: ignore[union-attr]
    bare = RoleDef.from_doc({"name": "nobody", "label": {"en": "Nobody"}})
    assert bare.entities == {} and bare.on("account") is None


def test_role_defs_do_not_share_state_with_their_document() -> None:
    doc = rep()
    role = RoleDef.from_doc(doc)
    doc["entities"]["account"]["actions"]["read"] = "all"
    assert role.on("account").actions["read"] == "org_unit_tree"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ("rep", [("roles", "type")]),
        (None, [("roles", "type")]),
        (["rep", 1], [("roles", "type")]),
        ({"rep": True}, [("roles", "type")]),
    ],
)
def test_role_lists_of_the_wrong_shape_are_refused_before_any_lookup(
    roles: Any, expected: list[tuple[str, str]]
) -> None:
    # No connection: the shape is checked before any role is looked up.
    found = role_errors(None, roles)  # type: ignore[arg-type]
    assert [(e.field, e.code) for e in found] == expected


def test_an_empty_role_list_and_the_admin_flag_need_no_lookup() -> None:
    assert role_errors(None, []) == []  # type: ignore[arg-type]
    assert role_errors(None, ["admin"], "--role") == []  # type: ignore[arg-type]
