"""Rules compiled to Python: every operator and function, SQL's null semantics, change
references, bounded results, the per-entity cache; and the SQL tests' cases give the same ids.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from test_rules_sql import (
    ACCOUNTS,
    CASES,
    ENTITIES,
    NOW,
    OPPORTUNITIES,
    OPPORTUNITY,
    USER,
)

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import RuleError
from metacrm.runtime.rules import (
    Checked,
    Env,
    RuleEvaluationError,
    Scope,
    check,
    compile_python,
    compile_python_record,
    compiled,
    holds,
    parse,
    sql_compatible,
)
from metacrm.runtime.rules.compile_py import CACHE_SIZE, MAX_TEXT_LENGTH

RECORD: dict[str, Any] = {
    "id": "o1",
    "owner": "u1",
    "name": "Acme 50%_deal",
    "amount": Decimal("5000.50"),
    "stage": "negotiation",
    "account": "a1",
    "close_date": date(2024, 1, 15),
    "closed_at": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
    "probability": 50,
    "is_won": False,
    "tags": ["a", "é"],
    "notes": None,
}
ACCOUNT_BY_ID = {a["id"]: a for a in ACCOUNTS}


def related_for(record: dict[str, Any]) -> Any:
    def related(path: tuple[str, ...]) -> Any:
        current: dict[str, Any] | None = record
        for name in path[:-1]:
            link = current.get(name) if current else None
            current = ACCOUNT_BY_ID.get(link) if link else None
        return current.get(path[-1]) if current else None

    return related


def env(record: dict[str, Any] | None = None, **kw: Any) -> Env:
    record = RECORD if record is None else record
    return Env(record=record, user=USER, now=NOW, related=related_for(record), **kw)


def checked_rule(text: str, *, change: bool = False, expect: str | None = None) -> Any:
    scope = Scope(OPPORTUNITY, ENTITIES.get, allow_change_refs=change)
    return check(parse(text), scope, expect=expect)


def fn(text: str, *, change: bool = False, expect: str | None = None) -> Any:
    return compile_python(checked_rule(text, change=change, expect=expect))


def on_record(text: str, record: Any = None, *, change: bool = False) -> Any:
    """The expression through compile_python_record, lookups answered as env() answers them."""
    run = compile_python_record(
        checked_rule(text, change=change), USER, NOW, related_for=related_for
    )
    return run(RECORD if record is None else record)


def value(text: str, record: dict[str, Any] | None = None, **kw: Any) -> Any:
    return fn(text, change="old" in kw)(env(record, **kw))


VALUES = [
    # literals and names
    ("1 + 2", 3),
    ("7 / 2", Decimal("3.5")),
    ("1 / 0", None),
    ("amount / 0", None),
    ("amount * 2", Decimal("10001.00")),
    ("amount - probability", Decimal("4950.50")),
    ("-amount", Decimal("-5000.50")),
    ("-probability", -50),
    ("null + 1", None),
    ("account.industry", "retail"),
    ("account.parent.name", "Holding"),
    ("account.parent.industry", None),
    ("$user.id", "u1"),
    ("$user.org_unit", None),
    ("$now", NOW),
    ("$today", date(2024, 3, 1)),
    # comparisons with null are unknown
    ("notes == null", None),
    ("notes == 'x'", None),
    ("notes != 'x'", None),
    ("probability > null", None),
    ("stage == 'negotiation'", True),
    ("name == 'acme 50%_deal'", False),
    ("amount == 5000.5", True),
    ("probability == 50.0", True),
    ("close_date == '2024-01-15'", True),
    ("closed_at > close_date", True),
    ("close_date < closed_at", True),
    ("date(closed_at) == close_date", True),
    ("'B' < 'a'", True),
    ("'é' > 'z'", True),
    ("'😀' > '中'", True),
    # Kleene logic
    ("null and false", False),
    ("null and true", None),
    ("null or true", True),
    ("null or false", None),
    ("not null", None),
    ("not (notes == 'x')", None),
    ("is_won or probability > 10", True),
    # text matching: case-sensitive, no wildcards
    ("name contains '50%_'", True),
    ("name contains '50__'", False),
    ("name contains 'acme'", False),
    ("name startswith 'Acme'", True),
    ("name endswith '_deal'", True),
    ("name endswith '%deal'", False),
    ("notes contains 'x'", None),
    ("tags contains 'é'", True),
    ("tags contains 'A'", False),
    # in / not in, as SQL
    ("stage in ['won', 'negotiation']", True),
    ("stage in ['won', null]", None),
    ("stage not in ['won', null]", None),
    ("stage not in ['negotiation', null]", False),
    ("stage in ['negotiation', null]", True),
    ("notes in []", False),
    ("notes not in []", True),
    ("notes in ['x']", None),
    ("probability in [1, 50.0]", True),
    ("closed_at in ['2024-01-15T10:30:00Z']", True),
    ("closed_at in ['2024-01-15T10:30:00+00:00', null]", True),
    # is null / is blank
    ("notes is null", True),
    ("notes is blank", True),
    ("name is not blank", True),
    ("tags is blank", False),
    ("amount is blank", False),
    ("null is null", True),
    # functions
    ("lower('ÄB')", "äb"),
    ("upper(name)", "ACME 50%_DEAL"),
    ("trim('  a\\t ')", "a\t"),
    ("len('😀é')", 2),
    ("len(notes)", None),
    ("concat(notes, 'a', 5, null)", "a5"),
    ("concat(null)", ""),
    ("coalesce(notes, stage)", "negotiation"),
    ("coalesce(null, null)", None),
    ("coalesce(probability, amount)", 50),
    ("abs(-amount)", Decimal("5000.50")),
    ("abs(-5)", 5),
    ("round(amount)", Decimal("5001")),
    ("round(2.45, 1)", Decimal("2.5")),
    ("round(-2.5)", Decimal("-3")),
    ("round(1234.5, -2)", Decimal("1235")),
    ("round(probability, 2)", 50),
    ("round(amount, null)", None),
    ("if(is_won, 1, 2)", 2),
    ("if(null, 1, 2)", 2),
    ("if(true, null, 2)", None),
    ("if(probability > 10, amount, 0)", Decimal("5000.50")),
    ("min(3, 1.5, 2)", Decimal("1.5")),
    ("max('a', 'B')", "a"),
    ("max(1, null)", None),
    ("min(close_date, '2024-01-01')", date(2024, 1, 1)),
    ("max(closed_at, $now)", NOW),
    ("coalesce(notes, 'x')", "x"),
    ("coalesce(close_date, '2024-01-01') == close_date", True),
    ("today()", date(2024, 3, 1)),
    ("now()", NOW),
    ("date(closed_at)", date(2024, 1, 15)),
    ("date('2024-02-29')", date(2024, 2, 29)),
    ("datetime(close_date)", datetime(2024, 1, 15, tzinfo=UTC)),
    ("datetime('2024-01-15T10:30:00+02:00')", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
    ("year(close_date)", 2024),
    ("month(closed_at)", 1),
    ("day(closed_at)", 15),
    ("days_between(close_date, $today)", 46),
    ("days_between($now, closed_at)", -46),
    ("days_between(close_date, null)", None),
    ("add_days(close_date, 20)", date(2024, 2, 4)),
    ("add_days(closed_at, -15)", datetime(2023, 12, 31, 10, 30, tzinfo=UTC)),
    ("add_days('9999-12-31', 1)", None),
    ("add_days('0001-01-01', -1)", None),
    ("add_days(close_date, 9223372036854775807)", None),
    ("add_days(close_date, null)", None),
    ("add_hours(closed_at, 5)", datetime(2024, 1, 15, 15, 30, tzinfo=UTC)),
    ("add_hours(close_date, -1)", datetime(2024, 1, 14, 23, 0, tzinfo=UTC)),
    ("add_hours('2024-02-29T23:59:59.5Z', 1)", datetime(2024, 3, 1, 0, 59, 59, 500000, tzinfo=UTC)),
    ("add_hours('9999-12-31T23:00:00Z', 1)", None),
    ("add_hours('0001-01-01T00:30:00Z', -1)", None),
    ("add_hours(closed_at, 9223372036854775807)", None),
    ("add_hours(closed_at, -9223372036854775807)", None),
    ("add_hours(closed_at, null)", None),
    ("add_hours(null, 3)", None),
]


@pytest.mark.parametrize(("text", "expected"), VALUES, ids=[v[0] for v in VALUES])
def test_expression_gives_value(text: str, expected: Any) -> None:
    result = value(text)
    assert result == expected
    assert type(result) is type(expected)


def test_holds_only_when_true() -> None:
    assert holds(fn("stage == 'negotiation'"), env())
    assert not holds(fn("notes == 'x'"), env())
    assert not holds(fn("is_won"), env())


def test_values_from_the_record_are_normalized() -> None:
    record = {**RECORD, "amount": 5000.5, "closed_at": datetime(2024, 1, 15, 10, 30)}
    assert value("amount == 5000.50", record) is True
    assert value("closed_at == '2024-01-15T10:30:00Z'", record) is True


def test_lookup_paths_are_null_without_related_values() -> None:
    plain = Env(record=RECORD, user=USER, now=NOW)
    assert fn("account.industry")(plain) is None


def test_today_is_the_utc_date_of_now() -> None:
    late = Env(record=RECORD, user=USER, now=datetime(2024, 3, 1, 23, 30, tzinfo=UTC))
    assert fn("$today")(late) == date(2024, 3, 1)


# --- the record as the only argument -------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), VALUES, ids=[v[0] for v in VALUES])
def test_record_function_gives_what_the_env_function_gives(text: str, expected: Any) -> None:
    result = on_record(text)
    assert result == expected
    assert type(result) is type(expected)


NULLS: dict[str, Any] = {**RECORD, "stage": None, "amount": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # and: false wins over null, null over true
        ("stage == 'won' and probability > 10", None),
        ("stage == 'won' and probability > 90", False),
        ("probability > 90 and stage == 'won'", False),
        ("stage == 'won' and amount > 5 and probability > 10", None),
        ("not (stage in ['won']) and probability > 10", None),
        ("stage != 'won' and notes == null", None),
        ("stage == 'won' and is_won", False),
        ("stage == 'won' and probability + 1 > 10", None),
        # or: true wins over null, null over false
        ("stage == 'won' or probability > 10", True),
        ("stage == 'won' or probability > 90", None),
        ("probability > 90 or stage == 'won'", None),
        ("probability > 90 or name startswith 'x'", False),
        ("stage not in ['won', 'lost'] or probability > 90", None),
        ("stage == 'won' or probability + 1 > 10", True),
        ("stage == 'won' or not is_won", True),
        # each clause alone
        ("amount > 5", None),
        ("not (amount in [5, 6])", None),
        ("stage is null and amount is null", True),
    ],
)
def test_chains_are_three_valued_on_every_entry_point(text: str, expected: Any) -> None:
    assert on_record(text, NULLS) is expected
    assert value(text, NULLS) is expected


def test_a_field_missing_from_the_record_is_null() -> None:
    sparse = {"probability": 50}
    assert on_record("stage == 'won' and probability > 10", sparse) is None
    assert on_record("stage == 'won' or probability > 10", sparse) is True
    assert on_record("stage == 'won' or probability > 90", sparse) is None
    assert on_record("name contains 'a'", sparse) is None
    assert value("stage == 'won' and probability > 10", sparse) is None


def test_any_mapping_serves_as_the_record() -> None:
    frozen = MappingProxyType({"stage": "won", "probability": 50})
    assert on_record("stage == 'won' and probability > 10", frozen) is True
    assert on_record("stage == 'won' and notes is null", frozen) is True


def test_record_values_are_normalized_in_chains() -> None:
    record = {
        **RECORD,
        "amount": 5000.5,
        "closed_at": datetime(2024, 1, 15, 10, 30),
        "close_date": datetime(2024, 1, 15, 23, 0, tzinfo=UTC),
    }
    for text in (
        "amount == 5000.50 and probability == 50",
        "amount > 5000 and closed_at == '2024-01-15T10:30:00Z'",
        "close_date == '2024-01-15' and amount in [5000.5]",
        "probability == 1 or closed_at >= '2024-01-15T10:30:00Z'",
    ):
        assert on_record(text, record) is True, text
        assert value(text, record) is True, text


def test_decimal_fields_compare_exactly_with_whole_numbers() -> None:
    for amount in (Decimal("5000.00"), 5000, 5000.0):
        record = {**RECORD, "amount": amount}
        assert on_record("amount == 5000 and amount >= 5000", record) is True
        assert on_record("amount > 5000 or amount < 5000", record) is False


def test_record_function_sees_the_user_and_the_clock() -> None:
    assert on_record("$user.id == 'u1' and $today == '2024-03-01'") is True
    assert on_record("days_between(close_date, $now)") == 46


def test_record_function_sees_no_change() -> None:
    assert on_record("changed(stage)", change=True) is False
    assert on_record("old.stage", change=True) is None
    assert on_record("old.stage == 'qualify' or stage == 'negotiation'", change=True) is True


def test_record_function_needs_related_values_for_lookup_paths() -> None:
    checked = checked_rule("account.industry == 'retail'")
    with pytest.raises(ValueError, match="lookups"):
        compile_python_record(checked, USER, NOW)
    run = compile_python_record(checked, USER, NOW, related_for=related_for)
    assert run(RECORD) is True
    assert run({**RECORD, "account": None}) is None


def test_record_function_raises_evaluation_errors() -> None:
    record = {**RECORD, "notes": "x" * MAX_TEXT_LENGTH}
    with pytest.raises(RuleEvaluationError, match="longer than"):
        on_record("concat(notes, '!') == 'x' and probability > 10", record)
    with pytest.raises(RuleEvaluationError, match="64-bit"):
        on_record("9223372036854775807 + probability > 0")
    huge = "amount" + " * 99999999999999999999999999999.9" * 35  # beyond 10^1000
    with pytest.raises(RuleEvaluationError, match="too large"):
        on_record(f"{huge} > 0 or stage == 'won'")
    wide = "amount" + " * 99999999999999999999999999999.9" * 2  # 60 digits before the point
    with pytest.raises(RuleEvaluationError, match="too large"):
        on_record(f"round({wide}, 10) > 0 and stage == 'negotiation'")


def test_an_unchecked_expression_is_not_compiled() -> None:
    unchecked = Checked(parse("amount > 5"), "boolean", frozenset(), False)
    with pytest.raises(ValueError, match="checked"):
        compile_python_record(unchecked, USER, NOW)


# --- change references --------------------------------------------------------------------------

BEFORE = {**RECORD, "stage": "qualify", "notes": None, "amount": Decimal("5000.5")}


@pytest.mark.parametrize(
    ("text", "old", "expected"),
    [
        ("changed(stage)", BEFORE, True),
        ("changed(notes)", BEFORE, False),  # null to null
        ("changed(amount)", BEFORE, False),  # 5000.5 == 5000.50
        ("changed(notes)", {**BEFORE, "notes": "x"}, True),  # value to null
        ("changed(probability)", {**BEFORE, "probability": None}, True),  # null to value
        ("changed(stage)", None, False),  # no change in view
        ("old.stage", BEFORE, "qualify"),
        ("old.stage", None, None),
        ("old.stage == 'qualify' and stage == 'negotiation'", BEFORE, True),
        ("old.account.industry", BEFORE, "retail"),  # the link did not change
        ("old.account.industry", {**BEFORE, "account": "a2"}, None),
    ],
)
def test_change_references(text: str, old: dict[str, Any] | None, expected: Any) -> None:
    assert fn(text, change=True)(env(old=old)) == expected


# --- bounds ------------------------------------------------------------------------------------


def test_text_longer_than_the_limit_is_an_evaluation_error() -> None:
    record = {**RECORD, "notes": "x" * MAX_TEXT_LENGTH}
    assert value("len(upper(notes))", record) == MAX_TEXT_LENGTH
    with pytest.raises(RuleEvaluationError, match="longer than") as caught:
        value("concat(notes, '!')", record)
    assert caught.value.status == 422
    assert caught.value.position is not None


def test_integer_overflow_is_an_evaluation_error() -> None:
    with pytest.raises(RuleEvaluationError, match="64-bit"):
        value("9223372036854775807 + probability")


def test_decimal_arithmetic_is_exact() -> None:
    assert value("0.1 + 0.2 == 0.3") is True
    assert value("1 / 3") == Decimal("0." + "3" * 60)


# --- the cache ---------------------------------------------------------------------------------


def fresh_entity() -> EntityDef:
    return EntityDef.from_doc(OPPORTUNITY.doc)


def test_compiled_returns_the_same_callable_from_its_cache() -> None:
    entity = fresh_entity()
    cache: dict[Any, Any] = {}
    first = compiled(
        entity,
        "amount > 5",
        expect="boolean",
        allow_change_refs=False,
        resolve_entity=ENTITIES.get,
        cache=cache,
    )
    again = compiled(
        entity,
        "amount > 5",
        expect="boolean",
        allow_change_refs=False,
        resolve_entity=ENTITIES.get,
        cache=cache,
    )
    assert again[1] is first[1]
    assert holds(first[1], env())
    other = compiled(
        entity, "amount > 5", expect="boolean", allow_change_refs=False, resolve_entity=ENTITIES.get
    )
    assert other[1] is not first[1]  # no cache: compiled afresh


def test_the_compiled_cache_is_bounded() -> None:
    entity = fresh_entity()
    cache: dict[Any, Any] = {}
    for n in range(CACHE_SIZE + 10):
        compiled(
            entity,
            f"amount > {n}",
            expect="boolean",
            allow_change_refs=False,
            resolve_entity=ENTITIES.get,
            cache=cache,
        )
    assert len(cache) == CACHE_SIZE
    assert ("amount > 0", "boolean", False) not in cache  # the oldest went first


def test_compiled_keys_on_expectation_and_change_scope() -> None:
    entity = fresh_entity()
    with pytest.raises(RuleError, match="only available"):
        compiled(
            entity,
            "changed(stage)",
            expect=None,
            allow_change_refs=False,
            resolve_entity=ENTITIES.get,
        )
    checked, run = compiled(
        entity, "changed(stage)", expect=None, allow_change_refs=True, resolve_entity=ENTITIES.get
    )
    assert checked.uses_change
    assert run(env(old=BEFORE)) is True


# --- SQL compatibility ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("stage == 'won'", None),
        ("add_days(close_date, 3) > $today", None),
        ("old.stage == 'won'", "old.stage"),
        ("is_won or changed(stage)", "changed()"),
    ],
)
def test_sql_compatible_names_what_cannot_run_as_sql(text: str, reason: str | None) -> None:
    scope = Scope(OPPORTUNITY, ENTITIES.get, allow_change_refs=True)
    found = sql_compatible(check(parse(text), scope), scope)
    assert (found is None) if reason is None else (reason in (found or ""))


def test_sql_compatible_finds_formulas_of_looked_up_records() -> None:
    account = EntityDef.from_doc(
        {
            "name": "account",
            "fields": [
                {"name": "name", "type": "text"},
                {
                    "name": "shout",
                    "type": "formula",
                    "expression": "upper(name)",
                    "result_type": "text",
                },
            ],
        }
    )
    entities = {"account": account, "opportunity": OPPORTUNITY}
    scope = Scope(OPPORTUNITY, entities.get)
    checked = check(parse("account.shout == 'X'"), scope)
    assert "computed on a looked-up record" in (sql_compatible(checked, scope) or "")


# --- the SQL backend's cases, in Python ----------------------------------------------------------


def _python_ids(text: str) -> list[str]:
    run = fn(text, expect="boolean")
    selected = []
    for row in OPPORTUNITIES:
        tags = row.get("tags")
        record = {**row, "tags": json.loads(tags) if isinstance(tags, str) else tags}
        record.setdefault("created_at", datetime(2024, 1, 1, tzinfo=UTC))
        if holds(run, env(record)):
            selected.append(row["id"])
    return sorted(selected)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_python_selects_what_sql_selects(text: str, expected: list[str]) -> None:
    assert _python_ids(text) == expected


def _record_function_ids(text: str) -> list[str]:
    run = compile_python_record(
        checked_rule(text, expect="boolean"), USER, NOW, related_for=related_for
    )
    selected = []
    for row in OPPORTUNITIES:
        tags = row.get("tags")
        record = {**row, "tags": json.loads(tags) if isinstance(tags, str) else tags}
        record.setdefault("created_at", datetime(2024, 1, 1, tzinfo=UTC))
        if run(record) is True:
            selected.append(row["id"])
    return sorted(selected)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_record_function_selects_what_sql_selects(text: str, expected: list[str]) -> None:
    assert _record_function_ids(text) == expected
