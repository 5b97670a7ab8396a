"""Rules in entity metadata, enforced by the record service on SQLite and PostgreSQL:
validation rules, conditional field logic, default expressions, and the rule tester."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import Api

RECORDS = "/api/v1/records/deal"

DEAL: dict[str, Any] = {
    "name": "deal",
    "label": {"en": "Deal"},
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "amount", "type": "decimal", "precision": 12, "scale": 2},
        {"name": "discount", "type": "integer", "visible_if": "amount > 1000"},
        {
            "name": "stage",
            "type": "picklist",
            "default": "open",
            "options": [{"value": "open"}, {"value": "won"}, {"value": "lost"}],
        },
        {"name": "lost_reason", "type": "text", "required_if": 'stage == "lost"'},
        {"name": "contract", "type": "text", "read_only_if": 'stage == "won"'},
        {"name": "follow_up", "type": "date", "default_expr": "add_days(today(), 30)"},
    ],
    "validation_rules": [
        {
            "name": "positive",
            "condition": "amount >= 0",
            "field": "amount",
            "message": {"en": "Amount can't be negative"},
        },
        {
            "name": "no_reopen",
            "condition": 'stage != "open"',
            "when": 'changed(stage) and old.stage == "won"',
            "field": "stage",
            "message": {"en": "A won deal can't be reopened"},
        },
    ],
}


@pytest.fixture
def deals(api: Api) -> Api:
    api.make_entity(DEAL)
    return api


def test_validation_rule_failure_is_422_with_message_on_the_field(deals: Api) -> None:
    response = deals.post(RECORDS, {"name": "d", "amount": "-5"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "amount", "code": "positive", "message": "Amount can't be negative"}
    ]
    # Unknown (null) is not a failure, as in a SQL CHECK constraint.
    assert deals.post(RECORDS, {"name": "d"}).status_code == 201


def test_when_limits_a_rule_to_some_changes(deals: Api) -> None:
    record = deals.post(RECORDS, {"name": "d", "stage": "won"}).json()
    url = f"{RECORDS}/{record['id']}"
    reopened = deals.patch(url, {"stage": "open"})
    assert reopened.status_code == 422
    assert reopened.json()["errors"][0]["message"] == "A won deal can't be reopened"
    assert deals.patch(url, {"stage": "lost", "lost_reason": "price"}).status_code == 200
    assert deals.patch(url, {"stage": "open"}).status_code == 200


def test_required_if_visible_if_and_read_only_if(deals: Api) -> None:
    lost = deals.post(RECORDS, {"name": "d", "stage": "lost"})
    assert lost.status_code == 422
    assert lost.json()["errors"][0]["field"] == "lost_reason"
    hidden = deals.post(RECORDS, {"name": "d", "amount": 10, "discount": 5})
    assert hidden.status_code == 422
    assert hidden.json()["errors"][0] == {
        "field": "discount",
        "code": "hidden",
        "message": "is hidden for this record",
    }
    shown = deals.post(RECORDS, {"name": "d", "amount": 5000, "discount": 5})
    assert shown.status_code == 201
    won = deals.post(RECORDS, {"name": "w", "stage": "won", "contract": "C-1"}).json()
    locked = deals.patch(f"{RECORDS}/{won['id']}", {"contract": "C-2"})
    assert locked.status_code == 422 and locked.json()["errors"][0]["code"] == "read_only"
    assert deals.get(f"{RECORDS}/{won['id']}").json()["contract"] == "C-1"


def test_default_expressions_fill_missing_fields(deals: Api) -> None:
    record = deals.post(RECORDS, {"name": "d"}).json()
    expected = {
        (datetime.now(UTC).date() + timedelta(days=30)).isoformat(),
        (date.today() + timedelta(days=30)).isoformat(),
    }
    assert record["follow_up"] in expected
    explicit = deals.post(RECORDS, {"name": "e", "follow_up": "2030-01-01"}).json()
    assert explicit["follow_up"] == "2030-01-01"


@pytest.mark.parametrize(
    ("place", "value", "pointer"),
    [
        ("rule", "amount >= nope", "/validation_rules/0/condition"),
        ("rule", "amount + 1", "/validation_rules/0/condition"),
        ("visible_if", "amount >", "/fields/2/visible_if"),
        ("default_expr", '"soon"', "/fields/6/default_expr"),
        ("visible_if", "changed(amount)", "/fields/2/visible_if"),
    ],
)
def test_rules_that_do_not_check_are_refused_at_design_time(
    api: Api, place: str, value: str, pointer: str
) -> None:
    document = {
        **DEAL,
        "fields": [dict(f) for f in DEAL["fields"]],
        "validation_rules": [dict(r) for r in DEAL["validation_rules"]],
    }
    if place == "rule":
        document["validation_rules"][0]["condition"] = value
    else:
        index = int(pointer.split("/")[2])
        document["fields"][index][place] = value
    response = api.post("/api/v1/meta/entities", document)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [pointer]
    assert "line 1" in errors[0]["message"] or "give" in errors[0]["message"]


def test_rule_tester_gives_type_sql_value_and_count(deals: Api) -> None:
    deals.post(RECORDS, {"name": "a", "amount": 2000})
    deals.post(RECORDS, {"name": "b", "amount": 20})
    url = "/api/v1/meta/entities/deal/rules/test"
    counted = deals.post(url, {"expression": "amount > 100"}).json()
    assert counted["type"] == "boolean" and counted["count"] == 1
    assert "amount" in counted["sql"]
    valued = deals.post(url, {"expression": "amount * 2", "record": {"amount": "1.25"}}).json()
    assert valued["type"] == "decimal" and float(valued["value"]) == 2.5
    changed = deals.post(
        url, {"expression": "changed(stage)", "record": {"stage": "won"}, "old": {"stage": "open"}}
    ).json()
    assert changed["value"] is True and changed["sql"] is None
    bad = deals.post(url, {"expression": "amout > 1"})
    assert bad.status_code == 400 and bad.json()["position"] == {"line": 1, "column": 1}
    token = deals.new_user("rep@example.com")
    assert (
        deals.post(
            url, {"expression": "amount > 1"}, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )
