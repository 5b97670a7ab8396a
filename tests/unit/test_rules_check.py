"""The rule-language type checker: names, lookup paths, operand types, functions, change refs.

Errors carry the position of the part at fault and close matches for unknown names.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import Position, RuleError
from metacrm.runtime.rules import Checked, Scope, check, parse
from metacrm.runtime.rules.ast import Compare, ListLit, Literal
from metacrm.runtime.rules.functions import FUNCTIONS

ACCOUNT = EntityDef.from_doc(
    {
        "name": "account",
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "industry", "type": "picklist", "options": [{"value": "retail"}]},
            {"name": "parent", "type": "lookup", "target": "account"},
            {"name": "region", "type": "lookup", "target": "region"},
        ],
    }
)
OPPORTUNITY = EntityDef.from_doc(
    {
        "name": "opportunity",
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "amount", "type": "decimal"},
            {"name": "stage", "type": "picklist", "options": [{"value": "qualify"}]},
            {"name": "account", "type": "lookup", "target": "account"},
            {"name": "close_date", "type": "date"},
            {"name": "closed_at", "type": "datetime"},
            {"name": "probability", "type": "integer"},
            {"name": "is_won", "type": "boolean"},
            {"name": "tags", "type": "multipicklist", "options": [{"value": "a"}]},
            {"name": "email", "type": "email"},
            {"name": "ref", "type": "autonumber", "pattern": "OPP-{seq:5}"},
            {"name": "manager", "type": "user"},
            {"name": "score", "type": "formula", "expression": "1", "result_type": "integer"},
        ],
    }
)
ENTITIES = {"account": ACCOUNT, "opportunity": OPPORTUNITY}
FILTER = Scope(OPPORTUNITY, ENTITIES.get)
CHANGE = Scope(OPPORTUNITY, ENTITIES.get, allow_change_refs=True)


def checked(source: str, scope: Scope = FILTER, expect: str | None = None) -> Checked:
    return check(parse(source), scope, expect)


def error(source: str, scope: Scope = FILTER, expect: str | None = None) -> RuleError:
    with pytest.raises(RuleError) as caught:
        checked(source, scope, expect)
    return caught.value


TYPES = [
    ("name", "text"),
    ("stage", "text"),
    ("email", "text"),
    ("ref", "text"),
    ("manager", "text"),
    ("account", "text"),
    ("amount", "decimal"),
    ("probability", "integer"),
    ("score", "integer"),
    ("is_won", "boolean"),
    ("close_date", "date"),
    ("closed_at", "datetime"),
    ("tags", "list"),
    ("id", "text"),
    ("owner", "text"),
    ("created_by", "text"),
    ("updated_by", "text"),
    ("created_at", "datetime"),
    ("updated_at", "datetime"),
    ("deleted_at", "datetime"),
    ("version", "integer"),
    ("account.industry", "text"),
    ("account.parent.region", "text"),
    ("$user.id", "text"),
    ("$user.role", "text"),
    ("$user.org_unit", "text"),
    ("$now", "datetime"),
    ("$today", "date"),
    ("null", "null"),
    ("1.5", "decimal"),
    ("-amount", "decimal"),
    ("probability + 1", "integer"),
    ("probability * amount", "decimal"),
    ("probability / 2", "decimal"),
    ("probability + null", "integer"),
    ("lower(name)", "text"),
    ("len(name)", "integer"),
    ("concat(name, probability, null)", "text"),
    ("coalesce(probability, 1)", "integer"),
    ("coalesce(null, probability, 1.5)", "decimal"),
    ("coalesce(null, null)", "null"),
    ("abs(amount)", "decimal"),
    ("round(probability)", "integer"),
    ("round(amount, 2)", "decimal"),
    ("today()", "date"),
    ("now()", "datetime"),
    ("date(closed_at)", "date"),
    ('date("2024-01-31")', "date"),
    ("year(close_date)", "integer"),
    ("month(closed_at)", "integer"),
    ("day($today)", "integer"),
    ("amount > 1 and not is_won", "boolean"),
    ('tags contains "a"', "boolean"),
    ("stage == null", "boolean"),
    ("null is null", "boolean"),
    ("closed_at > close_date", "boolean"),
    ("probability == 1.5", "boolean"),
]


@pytest.mark.parametrize(("source", "vtype"), TYPES, ids=[t[0] for t in TYPES])
def test_each_expression_gets_its_value_type(source: str, vtype: str) -> None:
    assert checked(source).vtype == vtype


def test_every_node_of_the_checked_tree_is_typed() -> None:
    result = checked('account.industry in ["retail"] and amount > 1 + probability')
    stack = [result.node]
    while stack:
        node = stack.pop()
        assert node.vtype is not None, node
        stack.extend(node.children())


def test_checked_reports_the_paths_it_reads() -> None:
    result = checked('account.industry == "x" or amount > 1 or $user.id == owner')
    assert result.paths == {("account", "industry"), ("amount",), ("owner",)}
    assert not result.uses_change


UNKNOWN_NAMES = [
    ("amont > 5", "unknown field 'amont'", Position(1, 1), ["amount", "account"]),
    (
        "stage == 'x' and\n  amout > 1",
        "unknown field 'amout'",
        Position(2, 3),
        ["amount", "account"],
    ),
    ("account.industy == 'x'", "unknown field 'industy' on account", Position(1, 9), ["industry"]),
    ("account.parent.nme == 'x'", "unknown field 'nme' on account", Position(1, 16), ["name"]),
    ("Amount > 1", "unknown field 'Amount'", Position(1, 1), ["amount", "account"]),
    ("close_date < today", "unknown field 'today'", Position(1, 14), ["today()"]),
    ("xyzzy", "unknown field 'xyzzy'", Position(1, 1), []),
    ("$user.rol == 'x'", "unknown attribute $user.rol", Position(1, 1), ["$user.role"]),
    ("lowr(name) == 'x'", "unknown function 'lowr'", Position(1, 1), ["lower()"]),
    ("uper(name) == 'x'", "unknown function 'uper'", Position(1, 1), ["upper()"]),
    ("is_won and\n   yaer(close_date) > 1", "unknown function 'yaer'", Position(2, 4), ["year()"]),
]


@pytest.mark.parametrize(
    ("source", "message", "position", "suggestions"),
    UNKNOWN_NAMES,
    ids=[u[0] for u in UNKNOWN_NAMES],
)
def test_unknown_names_say_where_and_suggest_close_matches(
    source: str, message: str, position: Position, suggestions: list[str]
) -> None:
    found = error(source)
    assert found.message == message
    assert found.position == position
    assert found.suggestions == suggestions


PATH_ERRORS = [
    ("stage.name == 'x'", "'stage' is not a lookup", Position(1, 7)),
    ("account.name.x == 'x'", "'name' is not a lookup", Position(1, 14)),
    ("account.region.name == 'x'", "looks up 'region', which is not an entity", Position(1, 9)),
    ("account.parent.parent.parent.name == 'x'", "at most 3 lookups", Position(1, 30)),
]


@pytest.mark.parametrize(
    ("source", "message", "position"), PATH_ERRORS, ids=[p[0] for p in PATH_ERRORS]
)
def test_paths_follow_only_lookups_and_at_most_three(
    source: str, message: str, position: Position
) -> None:
    found = error(source)
    assert message in found.message
    assert found.position == position


def test_a_path_may_follow_three_lookups() -> None:
    assert checked("account.parent.parent.industry").vtype == "text"


TYPE_ERRORS = [
    ("name > 5", "cannot compare text with integer", Position(1, 8)),
    ('amount == "x"', "cannot compare decimal with text", Position(1, 11)),
    ("is_won == 1", "cannot compare boolean with integer", Position(1, 11)),
    ("close_date == 5", "cannot compare date with integer", Position(1, 15)),
    ("is_won < true", "'<' cannot be used with boolean values", Position(1, 1)),
    ('tags == "a"', "'==' cannot be used with list values; use 'contains'", Position(1, 1)),
    (
        'amount contains "1"',
        "'contains' needs text or a list on the left, not decimal",
        Position(1, 1),
    ),
    ("name contains 5", "'contains' needs text on the right, not integer", Position(1, 15)),
    ('tags startswith "a"', "'startswith' needs text on the left, not list", Position(1, 1)),
    ('stage in "won"', "expected a list such as", Position(1, 10)),
    ('stage in ["won", 2]', "cannot compare text with integer", Position(1, 18)),
    ('tags in ["a"]', "'in' cannot be used with list values", Position(1, 1)),
    ("[1, 2]", "a list can only follow 'in' or 'not in'", Position(1, 1)),
    ("name + 1 > 0", "cannot apply '+' to text and integer; use concat()", Position(1, 1)),
    ("amount * is_won > 0", "cannot apply '*' to decimal and boolean", Position(1, 10)),
    ("-name == 'x'", "'-' needs a number, not text", Position(1, 2)),
    ("not amount", "'not' needs a condition (true or false), not decimal", Position(1, 5)),
    ("is_won and name", "'and' needs a condition (true or false), not text", Position(1, 12)),
    (
        "probability or is_won",
        "'or' needs a condition (true or false), not integer",
        Position(1, 1),
    ),
    ('close_date < "2024-13-01"', "'2024-13-01' is not a valid date", Position(1, 14)),
    ('close_date < "soon"', "is not a valid date", Position(1, 14)),
    ('closed_at < "yesterday"', "is not a valid datetime", Position(1, 13)),
    ('close_date in ["2024-01-01", "nope"]', "'nope' is not a valid date", Position(1, 30)),
    ("99999999999999999999 > amount", "too large", Position(1, 1)),
    ("amount > 1." + "1" * 40, "too many digits", Position(1, 10)),
]


@pytest.mark.parametrize(
    ("source", "message", "position"), TYPE_ERRORS, ids=[t[0] for t in TYPE_ERRORS]
)
def test_type_errors_name_the_types_and_the_part_at_fault(
    source: str, message: str, position: Position
) -> None:
    found = error(source)
    assert message in found.message
    assert found.position == position


def test_iso_text_compared_with_a_date_becomes_a_date_literal() -> None:
    node = checked('close_date < "2024-01-31"').node
    assert isinstance(node, Compare)
    assert node.right == Literal(date(2024, 1, 31), "date")
    assert node.right.vtype == "date"


def test_iso_text_compared_with_a_datetime_becomes_a_utc_datetime() -> None:
    node = checked('"2024-01-31T10:00:00+02:00" <= closed_at').node
    assert isinstance(node, Compare)
    assert node.left == Literal(datetime(2024, 1, 31, 8, 0, tzinfo=UTC), "datetime")
    naive = checked('closed_at > "2024-01-31"').node
    assert isinstance(naive, Compare)
    assert naive.right == Literal(datetime(2024, 1, 31, tzinfo=UTC), "datetime")


def test_in_list_items_are_converted_to_dates_too() -> None:
    node = checked('close_date in ["2024-01-01", "2024-02-01"]').node
    assert isinstance(node, Compare) and isinstance(node.right, ListLit)
    assert [i.value for i in node.right.items if isinstance(i, Literal)] == [
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]


def test_text_that_looks_like_a_date_stays_text_against_text() -> None:
    node = checked('name == "2024-01-01"').node
    assert isinstance(node, Compare)
    assert node.right == Literal("2024-01-01", "text")


def test_a_filter_must_be_a_condition() -> None:
    found = error("amount + 1", expect="boolean")
    assert "must be a condition" in found.message
    assert found.position == Position(1, 1)
    assert checked("is_won", expect="boolean").vtype == "boolean"


def test_an_expected_decimal_accepts_an_integer() -> None:
    assert checked("probability", expect="decimal").vtype == "integer"
    assert "must give date" in error("amount", expect="date").message


CHANGE_REFS = [
    ('old.stage == "won"', "old.stage is only available in rules that see a change"),
    ("changed(stage)", "changed() is only available in rules that see a change"),
    ("is_won and (changed(stage) or old.amount > 5)", "only available in rules that see a change"),
]


@pytest.mark.parametrize(("source", "message"), CHANGE_REFS, ids=[c[0] for c in CHANGE_REFS])
def test_change_references_are_refused_in_filters(source: str, message: str) -> None:
    assert message in error(source).message


def test_change_references_work_where_a_change_is_in_view() -> None:
    result = checked(
        'changed(stage) and old.stage == "qualify" and old.account.name == "x"', CHANGE
    )
    assert result.vtype == "boolean"
    assert result.uses_change


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("changed(account.name)", "changed() takes one field of this record"),
        ("changed()", "changed() takes one field of this record"),
        ("changed(1)", "changed() takes one field of this record"),
        ("changed(stag)", "unknown field 'stag'"),
        ("old.stag == 1", "unknown field 'stag'"),
    ],
)
def test_change_references_are_checked_too(source: str, message: str) -> None:
    assert message in error(source, CHANGE).message


def test_unknown_function_in_a_change_rule_suggests_changed() -> None:
    assert error("chaned(stage)", CHANGE).suggestions == ["changed()"]


FUNCTION_ERRORS = [
    ("lower(name, 1)", "lower() takes 1 argument, got 2", Position(1, 13)),
    ("lower()", "lower() needs 1 argument, got 0", Position(1, 1)),
    ("today(1)", "today() takes 0 arguments, got 1", Position(1, 7)),
    ("round(amount, 1, 2)", "round() takes at most 2 arguments, got 3", Position(1, 18)),
    ("round()", "round() needs at least 1 argument, got 0", Position(1, 1)),
    ("concat()", "concat() needs at least 1 argument, got 0", Position(1, 1)),
    ("coalesce(name)", "coalesce() needs at least 2 arguments, got 1", Position(1, 1)),
    ("lower(amount)", "argument 1 of lower() must be text, not decimal", Position(1, 7)),
    ("len(tags)", "argument 1 of len() must be text, not list", Position(1, 5)),
    ("abs(name)", "argument 1 of abs() must be a number, not text", Position(1, 5)),
    ('round(amount, "2")', "argument 2 of round() must be an integer, not text", Position(1, 15)),
    (
        "round(amount, 1.5)",
        "argument 2 of round() must be an integer, not decimal",
        Position(1, 15),
    ),
    ("year(name)", "argument 1 of year() must be a date or datetime, not text", Position(1, 6)),
    ('date("31/01/2024")', "'31/01/2024' is not a valid datetime", Position(1, 6)),
    ("concat(name, is_won)", "argument 2 of concat() must be text or an integer", Position(1, 14)),
    ("coalesce(name, 1)", "coalesce() must have one type, not text and integer", Position(1, 16)),
    (
        "coalesce(close_date, closed_at)",
        "must have one type, not date and datetime",
        Position(1, 22),
    ),
    ("is_won or\n  upper(\n    2)", "argument 1 of upper() must be text", Position(3, 5)),
]


@pytest.mark.parametrize(
    ("source", "message", "position"), FUNCTION_ERRORS, ids=[f[0] for f in FUNCTION_ERRORS]
)
def test_function_calls_are_checked_against_their_signatures(
    source: str, message: str, position: Position
) -> None:
    found = error(source)
    assert message in found.message
    assert found.position == position


def test_the_first_part_functions_are_all_in_the_signature_table() -> None:
    wanted = "lower upper trim len concat coalesce abs round today now date year month day"
    assert set(wanted.split()) <= set(FUNCTIONS)


def test_errors_render_as_problem_json_with_position_and_suggestions() -> None:
    body = error("is_won and amont > 1").problem()
    assert body["status"] == 400
    assert body["position"] == {"line": 1, "column": 12}
    assert body["suggestions"] == ["amount", "account"]
    assert "did you mean amount, account?" in body["detail"]
