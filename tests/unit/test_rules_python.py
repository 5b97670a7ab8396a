"""Rules compiled to Python: every operator and function, SQL's null semantics, change
references, bounded results, the per-entity cache; and the SQL tests' cases give the same ids.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
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
    Env,
    RuleEvaluationError,
    Scope,
    check,
    compile_python,
    compiled,
    holds,
    parse,
    sql_compatible,
)
from metacrm.runtime.rules.compile_py import MAX_TEXT_LENGTH

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


def fn(text: str, *, change: bool = False, expect: str | None = None) -> Any:
    scope = Scope(OPPORTUNITY, ENTITIES.get, allow_change_refs=change)
    return compile_python(check(parse(text), scope, expect=expect))


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


def test_compiled_returns_the_same_callable_per_entity_snapshot() -> None:
    entity = fresh_entity()
    first = compiled(
        entity, "amount > 5", expect="boolean", allow_change_refs=False, resolve_entity=ENTITIES.get
    )
    again = compiled(
        entity, "amount > 5", expect="boolean", allow_change_refs=False, resolve_entity=ENTITIES.get
    )
    assert again[1] is first[1]
    assert holds(first[1], env())
    other = compiled(
        fresh_entity(),
        "amount > 5",
        expect="boolean",
        allow_change_refs=False,
        resolve_entity=ENTITIES.get,
    )
    assert other[1] is not first[1]


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
