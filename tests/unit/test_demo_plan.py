"""The demo year as a plan (pure): sized by the scale, the same for the same seed, in time order
within the last year and working hours, each step by someone whose role fits, referring only to
records made before it, and moving records the way their pipelines let them move."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from metacrm.plugins.crm.demo.calendar import LOCAL
from metacrm.plugins.crm.demo.plan import (
    Create,
    Decide,
    Demo,
    Ref,
    Update,
    UserOf,
    plan,
    sizes,
)
from metacrm.plugins.crm.demo.staff import REGIONS

NOW = datetime(2025, 6, 11, 12, 0, tzinfo=UTC)
# Who may create what: the template's roles as the demo's staff hold them.
CREATORS = {
    "lead": {"sales_rep", "sales_manager"},
    "customer": {"sales_rep"},
    "contact": {"sales_rep"},
    "opportunity": {"sales_rep"},
    "activity": {"sales_rep", "service_agent"},
    "ticket": {"service_manager"},
}
PIPELINES = {
    "lead": ("status", "unassigned"),
    "opportunity": ("stage", "initial_contact"),
    "ticket": ("status", "new"),
    "customer": ("lifecycle", "prospect"),
}


@cache
def year(seed: int = 1, scale: float = 0.3) -> Demo:
    return plan(seed, scale, NOW)


def final_records(demo: Demo) -> dict[str, dict[str, Any]]:
    """Each record's values after every step of the plan."""
    records: dict[str, dict[str, Any]] = {}
    for step in demo.steps:
        if isinstance(step, Create):
            records[step.key] = dict(step.data)
        elif isinstance(step, Update):
            records[step.key].update(step.data)
    return records


def of(records: dict[str, dict[str, Any]], entity: str) -> list[dict[str, Any]]:
    return [r for key, r in records.items() if key.startswith(f"{entity}:")]


@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_the_records_made_follow_the_scale(scale: float) -> None:
    made = Counter(s.entity for s in year(1, scale).steps if isinstance(s, Create))
    wanted = sizes(scale)
    assert {e: made[e] for e in wanted} == wanted
    # Every customer has a contact or more.
    assert wanted["customer"] <= made["contact"] <= 4 * wanted["customer"]


def test_full_size_is_the_issues_data_set() -> None:
    assert sizes(1.0) == {
        "lead": 2000,
        "customer": 800,
        "opportunity": 1000,
        "activity": 5000,
        "ticket": 600,
    }


def test_the_same_seed_makes_the_same_year_and_another_seed_another() -> None:
    assert plan(7, 0.05, NOW) == plan(7, 0.05, NOW)
    assert plan(7, 0.05, NOW).steps != plan(8, 0.05, NOW).steps


def test_steps_are_in_time_order_within_the_last_year_in_working_hours() -> None:
    steps = year().steps
    moments = [s.at for s in steps]
    assert moments == sorted(moments)
    assert NOW - timedelta(days=365) <= moments[0] and moments[-1] <= NOW
    for moment in moments:
        local = moment.astimezone(LOCAL)
        assert local.weekday() < 5 and 9 <= local.hour <= 18, moment
    # Spread over the year, not bunched: every month has records made in it.
    months = {(s.at.year, s.at.month) for s in steps if isinstance(s, Create)}
    assert len(months) >= 12


def test_each_step_is_taken_by_someone_whose_role_fits() -> None:
    demo = year()
    roles = {m.key: m.role for m in demo.staff.members}
    owners: dict[str, str] = {}
    for step in demo.steps:
        role = roles[step.actor]
        if isinstance(step, Create):
            assert role in CREATORS[step.entity], step
            owners[step.key] = step.actor
        elif isinstance(step, Update):
            owner = owners[step.key]
            if "owner" in step.data:
                # Handing a record over: the owner's manager (leads) or the service desk.
                new_owner = step.data["owner"]
                assert isinstance(new_owner, UserOf)
                manager = demo.staff.member(new_owner.key).manager
                assert step.actor == owner and (manager == owner or role == "service_manager")
                owners[step.key] = new_owner.key
            else:
                assert step.actor == owner, step
        else:
            assert isinstance(step, Decide)
            assert role in ("sales_manager", "sales_director"), step


def test_steps_refer_only_to_records_made_before_them() -> None:
    made: set[str] = set()
    for step in year().steps:
        data = {} if isinstance(step, Decide) else step.data
        refs = [v.key for v in data.values() if isinstance(v, Ref)]
        assert set(refs) <= made, step
        if isinstance(step, Create):
            made.add(step.key)
        else:
            assert step.key in made, step


def test_records_move_as_their_pipelines_allow() -> None:
    demo = year()
    values: dict[str, dict[str, Any]] = {}
    for step in demo.steps:
        if isinstance(step, Create):
            values[step.key] = dict(step.data)
            continue
        if isinstance(step, Decide):
            assert float(values[step.key]["discount_percent"]) > 20
            continue
        before = values[step.key]
        after = {**before, **step.data}
        values[step.key] = after
        if step.entity == "opportunity" and step.data.get("stage") == "proposal":
            assert after.get("amount") and after.get("close_date"), step
        if step.entity == "opportunity" and step.data.get("stage") == "lost":
            assert after.get("lost_reason"), step
        if step.entity == "ticket" and step.data.get("status") == "resolved":
            assert after.get("resolution"), step
        if step.entity == "lead":
            # Converted and voided leads stay where they are.
            assert before.get("status") not in ("converted", "voided"), step


def test_stages_are_spread_in_realistic_proportions() -> None:
    records = final_records(year())
    counts = {
        entity: Counter(r.get(field, initial) for r in of(records, entity))
        for entity, (field, initial) in PIPELINES.items()
    }
    assert set(counts["lead"]) == {
        "unassigned", "pending", "following_up", "converted", "invalid", "voided"
    }  # fmt: skip
    assert set(counts["opportunity"]) == {
        "initial_contact", "intent_confirmed", "proposal", "negotiation", "won", "lost"
    }  # fmt: skip
    assert {"assigned", "in_progress", "resolved", "closed"} <= set(counts["ticket"])
    assert {"prospect", "intent", "customer"} <= set(counts["customer"])
    opportunities = sum(counts["opportunity"].values())
    for stage in ("won", "lost"):
        assert 0.1 < counts["opportunity"][stage] / opportunities < 0.4, counts["opportunity"]
    leads = sum(counts["lead"].values())
    assert 0.05 < counts["lead"]["converted"] / leads < 0.2, counts["lead"]
    tickets = sum(counts["ticket"].values())
    assert counts["ticket"]["closed"] / tickets > 0.5, counts["ticket"]


def test_names_are_chinese_and_english_with_plausible_numbers() -> None:
    records = final_records(year())
    companies = [r["name"] for r in of(records, "customer")]
    chinese = [c for c in companies if c.endswith("公司")]
    assert 0.5 < len(chinese) / len(companies) < 0.95
    assert any(c.startswith(("上海", "北京", "广州", "深圳", "杭州")) for c in chinese)
    contacts = of(records, "contact")
    mobiles = [c["mobile"] for c in contacts if "mobile" in c]
    assert mobiles and all(len(m) == 11 and m.startswith("1") and m.isdigit() for m in mobiles)
    assert all(
        "@" in c["email"] and "." in c["email"].split("@")[1] for c in contacts if "email" in c
    )
    regions = {r["region"] for r in of(records, "customer")}
    assert regions == set(REGIONS)


def test_the_staff_is_thirty_people_in_a_reporting_line() -> None:
    staff = year().staff
    assert len(staff.members) == 30
    assert Counter(m.role for m in staff.members) == {
        "sales_director": 4,
        "sales_manager": 6,
        "sales_rep": 15,
        "service_manager": 1,
        "service_agent": 4,
    }
    keys = {m.key for m in staff.members}
    for member in staff.members:
        assert member.manager is None or member.manager in keys
        if member.role == "sales_rep":
            manager = staff.member(member.manager or "")
            director = staff.member(manager.manager or "")
            assert (manager.role, director.role) == ("sales_manager", "sales_director")
            assert member.region == manager.region == director.region
    assert {u.name for u in staff.units} >= {"hq", *REGIONS}
    assert len({m.email for m in staff.members}) == 30
