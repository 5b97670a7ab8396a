"""The rule-language parser: every construct, precedence, positions and its error messages.

Any input at all gives a tree or a RuleError, never another exception.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacrm.platform.errors import Position, RuleError
from metacrm.runtime.rules import parse
from metacrm.runtime.rules.ast import (
    Arith,
    BoolOp,
    Call,
    Compare,
    FieldRef,
    IsCheck,
    ListLit,
    Literal,
    Neg,
    Node,
    Not,
    Now,
    OldRef,
    Today,
    UserRef,
)
from metacrm.runtime.rules.parse import MAX_LENGTH, _parser


def f(*path: str) -> FieldRef:
    return FieldRef(path)


def num(value: int | str) -> Literal:
    return (
        Literal(value, "integer") if isinstance(value, int) else Literal(Decimal(value), "decimal")
    )


def text(value: str) -> Literal:
    return Literal(value, "text")


TRUE, FALSE, NULL = Literal(True, "boolean"), Literal(False, "boolean"), Literal(None, "null")


CONSTRUCTS: list[tuple[str, Node]] = [
    ("42", num(42)),
    ("3.25", num("3.25")),
    ("-7", num(-7)),
    ("-0.5", num("-0.5")),
    ('"double"', text("double")),
    ("'single'", text("single")),
    (r'"say \"hi\""', text('say "hi"')),
    (r"'it\'s'", text("it's")),
    (r'"a\\b"', text("a\\b")),
    (r'"line\nnext\ttab"', text("line\nnext\ttab")),
    (r'"caf\u00e9"', text("café")),
    ('"闪电 ✓"', text("闪电 ✓")),
    ("true", TRUE),
    ("false", FALSE),
    ("null", NULL),
    ("[]", ListLit(())),
    ("[1, 2]", ListLit((num(1), num(2)))),
    ("[\"a\", 'b', null]", ListLit((text("a"), text("b"), NULL))),
    ("amount", f("amount")),
    ("account.industry", f("account", "industry")),
    ("account . parent.name", f("account", "parent", "name")),
    ("old", f("old")),
    ("old.stage", OldRef(("stage",))),
    ("$user.id", UserRef("id")),
    ("$user.role", UserRef("role")),
    ("$user.org_unit", UserRef("org_unit")),
    ("$now", Now()),
    ("$today", Today()),
    ("today()", Call("today", ())),
    ("changed(stage)", Call("changed", (f("stage"),))),
    ("round(amount, 2)", Call("round", (f("amount"), num(2)))),
    ("concat(a, ' ', lower(b))", Call("concat", (f("a"), text(" "), Call("lower", (f("b"),))))),
    ("a == 1", Compare("==", f("a"), num(1))),
    ("a != 1", Compare("!=", f("a"), num(1))),
    ("a < 1", Compare("<", f("a"), num(1))),
    ("a <= 1", Compare("<=", f("a"), num(1))),
    ("a > 1", Compare(">", f("a"), num(1))),
    ("a >= 1", Compare(">=", f("a"), num(1))),
    ("a in [1]", Compare("in", f("a"), ListLit((num(1),)))),
    ("a not in [1]", Compare("not in", f("a"), ListLit((num(1),)))),
    ('a contains "x"', Compare("contains", f("a"), text("x"))),
    ('a startswith "x"', Compare("startswith", f("a"), text("x"))),
    ('a endswith "x"', Compare("endswith", f("a"), text("x"))),
    ("a is null", IsCheck(f("a"), "null", False)),
    ("a is not null", IsCheck(f("a"), "null", True)),
    ("a is blank", IsCheck(f("a"), "blank", False)),
    ("a is not blank", IsCheck(f("a"), "blank", True)),
    ("a and b", BoolOp("and", (f("a"), f("b")))),
    ("a or b", BoolOp("or", (f("a"), f("b")))),
    ("not a", Not(f("a"))),
    ("a + b", Arith("+", f("a"), f("b"))),
    ("a - b", Arith("-", f("a"), f("b"))),
    ("a * b", Arith("*", f("a"), f("b"))),
    ("a / b", Arith("/", f("a"), f("b"))),
    ("-a", Neg(f("a"))),
    ("- -a", Neg(Neg(f("a")))),
    ("(a)", f("a")),
    ("order == 1", Compare("==", f("order"), num(1))),
    ("True", f("True")),
    ("index in [1]", Compare("in", f("index"), ListLit((num(1),)))),
]


@pytest.mark.parametrize(("source", "expected"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_every_construct_parses_to_its_node(source: str, expected: Node) -> None:
    assert parse(source) == expected


PRECEDENCE: list[tuple[str, Node]] = [
    ("a or b and c", BoolOp("or", (f("a"), BoolOp("and", (f("b"), f("c")))))),
    ("a and b or c", BoolOp("or", (BoolOp("and", (f("a"), f("b"))), f("c")))),
    ("not a and b", BoolOp("and", (Not(f("a")), f("b")))),
    ("not a or not b", BoolOp("or", (Not(f("a")), Not(f("b"))))),
    ("not a == 1", Not(Compare("==", f("a"), num(1)))),
    ("not not a", Not(Not(f("a")))),
    ("(a or b) and c", BoolOp("and", (BoolOp("or", (f("a"), f("b"))), f("c")))),
    ("a or b or c", BoolOp("or", (f("a"), f("b"), f("c")))),
    ("a + b * c", Arith("+", f("a"), Arith("*", f("b"), f("c")))),
    ("a - b - c", Arith("-", Arith("-", f("a"), f("b")), f("c"))),
    ("a / b * c", Arith("*", Arith("/", f("a"), f("b")), f("c"))),
    ("(a + b) * c", Arith("*", Arith("+", f("a"), f("b")), f("c"))),
    ("-a * b", Arith("*", Neg(f("a")), f("b"))),
    ("a - -1", Arith("-", f("a"), num(-1))),
    (
        "a + 1 == b * 2",
        Compare("==", Arith("+", f("a"), num(1)), Arith("*", f("b"), num(2))),
    ),
    (
        'a == 1 and b contains "x" or c is null',
        BoolOp(
            "or",
            (
                BoolOp(
                    "and", (Compare("==", f("a"), num(1)), Compare("contains", f("b"), text("x")))
                ),
                IsCheck(f("c"), "null", False),
            ),
        ),
    ),
    ("a + b is null", IsCheck(Arith("+", f("a"), f("b")), "null", False)),
    ("(a == 1) == true", Compare("==", Compare("==", f("a"), num(1)), TRUE)),
]


@pytest.mark.parametrize(("source", "expected"), PRECEDENCE, ids=[c[0] for c in PRECEDENCE])
def test_precedence_is_not_over_and_over_or_and_arithmetic_binds_tighter(
    source: str, expected: Node
) -> None:
    assert parse(source) == expected


def test_positions_point_at_the_first_token_on_multi_line_input() -> None:
    node = parse('stage == "won"\n  and\n    (amount > 5\n     or $user.id == owner)')
    assert isinstance(node, BoolOp)
    compare, group = node.operands
    assert node.pos == Position(1, 1)
    assert isinstance(compare, Compare)
    assert compare.right.pos == Position(1, 10)
    assert isinstance(group, BoolOp)
    assert group.pos == Position(3, 6)
    amount, user = group.operands
    assert isinstance(amount, Compare) and amount.left.pos == Position(3, 6)
    assert isinstance(user, Compare) and user.left.pos == Position(4, 9)
    assert user.right.pos == Position(4, 21)


def test_path_segments_keep_their_own_positions() -> None:
    node = parse("x ==\n account.parent.name")
    assert isinstance(node, Compare)
    assert isinstance(node.right, FieldRef)
    assert node.right.segment_pos == (Position(2, 2), Position(2, 10), Position(2, 17))


ERRORS: list[tuple[str, str, Position]] = [
    ("", "empty", Position(1, 1)),
    ("   \n ", "empty", Position(1, 1)),
    ("a ==", "expected a value after '=='", Position(1, 5)),
    ("a == )", "expected a value after '==', found ')'", Position(1, 6)),
    ("x and\n  or y", "expected a value after 'and', found 'or'", Position(2, 3)),
    ("a == b == c", "comparisons cannot be chained", Position(1, 8)),
    ("a < b > c", "comparisons cannot be chained", Position(1, 7)),
    ("(a == 1", "expected ')'", Position(1, 8)),
    ("f(a", "expected ')' or ','", Position(1, 4)),
    ("[1 2]", "expected an operator, ']' or ','", Position(1, 4)),
    ("a b", "unexpected 'b'; expected an operator or the end of the expression", Position(1, 3)),
    ("a )", "unexpected ')'", Position(1, 3)),
    ("x is 3", "expected 'null', 'not' or 'blank'", Position(1, 6)),
    ("x not 3", "expected 'in'", Position(1, 7)),
    ("account.", "expected a field name", Position(1, 9)),
    ('"abc', "unterminated string", Position(1, 1)),
    ("a == 'abc\ndef'", "unterminated string", Position(1, 6)),
    ("a = 1", "use '=='", Position(1, 3)),
    ("a && b", "use 'and'", Position(1, 3)),
    ("a # b", "unexpected character '#'", Position(1, 3)),
    ("a == 1 AND b", "unexpected 'AND'", Position(1, 8)),
    ("$", "expected a name after '$'", Position(1, 1)),
    ("$user", "one attribute after $user", Position(1, 1)),
    ("$user.a.b", "one attribute after $user", Position(1, 1)),
    ("$now.x", "$now has no attributes", Position(1, 6)),
    (r'"bad \q escape"', "unknown escape '\\q'", Position(1, 6)),
    (r'"\u12"', "four hex digits", Position(1, 2)),
    (r'"\ud800"', "not an allowed character", Position(1, 2)),
    ("a == '\x00'", "not allowed", Position(1, 7)),
    ("a" * 10_001, "too long", Position(1, 1)),
    ("(" * 70 + "a" + ")" * 70, "nested too deeply", Position(1, 65)),
    ("not " * 70 + "a", "nested too deeply", Position(1, 257)),
    ("+".join(["1"] * 80), "nested too deeply", Position(1, 1)),
]


@pytest.mark.parametrize(("source", "message", "position"), ERRORS, ids=[e[1] for e in ERRORS])
def test_bad_input_raises_rule_error_saying_what_was_expected_and_where(
    source: str, message: str, position: Position
) -> None:
    with pytest.raises(RuleError) as caught:
        parse(source)
    assert message in caught.value.message
    assert caught.value.position == position


def test_unknown_variable_lists_close_matches() -> None:
    with pytest.raises(RuleError) as caught:
        parse("$tody > close_date")
    assert caught.value.suggestions == ["$today"]
    assert caught.value.problem()["position"] == {"line": 1, "column": 1}


def test_long_flat_chains_stay_shallow() -> None:
    node = parse(" or ".join(f"a == {i}" for i in range(500)))
    assert isinstance(node, BoolOp) and len(node.operands) == 500


def test_input_at_the_length_limit_is_accepted() -> None:
    source = "a" * MAX_LENGTH
    assert parse(source) == f(source)


def test_the_parser_is_built_once() -> None:
    assert _parser() is _parser()


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_rule_error(source: str) -> None:
    try:
        parse(source)
    except RuleError as exc:
        assert exc.position is not None


_TOKENS = st.sampled_from(
    [
        "a", "b.c", "1", "2.5", '"s"', "'t'", "true", "null", "$user.id", "$now", "old.x",
        "f(", "(", ")", "[", "]", ",", "==", "<", "and", "or", "not", "in", "is", "blank",
        "contains", "+", "-", "*", "/", "\n", "\\", '"', "$", "=", "!",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=25).map(" ".join))
def test_token_soup_parses_or_raises_rule_error(source: str) -> None:
    try:
        parse(source)
    except RuleError as exc:
        assert exc.position is not None
