"""Scheduled automations on SQLite and PostgreSQL, with a controlled clock: the SLA breach job
flags the tickets past their resolution time through the record service's bulk update, publishes
one event per ticket it changes, skips (and logs) a ticket the rules refuse, runs at most once
per period, and changes nothing more when run again."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Api
from test_automations_common import (
    AUTOMATIONS,
    SLA_BREACH,
    TICKET,
    TICKET_SLA,
    TICKETS,
    automate,
    created,
    errors,
    events_of,
    history,
    ok,
)

from metacrm.metadata.automations import AUTOMATION
from metacrm.platform.db import writing
from metacrm.runtime.automation_jobs import SCHEDULED_TASK, run_due
from metacrm.runtime.automations import run_scheduled
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services

T0 = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)


def at(api: Api, moment: datetime) -> Services:
    """The services a periodic job runs with, their clock stopped at `moment`."""
    return api.services_with(clock=lambda: moment)


def tickets(api: Api) -> dict[str, dict[str, Any]]:
    return {t["subject"]: t for t in ok(api.get(f"{TICKETS}?limit=100"))["data"]}


@pytest.fixture
def desk(make_api: Any) -> Api:
    """Tickets opened at T0: P1 (resolution due after 4 hours), P4 (72 hours), a frozen P1 the
    rules won't flag, and a closed P1."""
    api: Api = make_api(clock=lambda: T0)
    api.make_entity(TICKET)
    automate(api, TICKET_SLA, SLA_BREACH)
    created(api.post(TICKETS, {"subject": "urgent", "priority": "P1"}))
    created(api.post(TICKETS, {"subject": "someday", "priority": "P4"}))
    created(api.post(TICKETS, {"subject": "frozen", "priority": "P1"}))
    created(api.post(TICKETS, {"subject": "done", "priority": "P1", "status": "closed"}))
    return api


def test_the_breach_job_is_registered_at_start_up(api: Api) -> None:
    assert api.services.registry.spec(SCHEDULED_TASK).every == 60


def test_the_job_flags_tickets_past_resolution_once_with_one_event_each(
    desk: Api, caplog: pytest.LogCaptureFixture
) -> None:
    before = tickets(desk)
    with caplog.at_level(logging.WARNING, logger="metacrm.automations"):
        runs = run_due(at(desk, T0 + timedelta(hours=5)))
    assert runs["sla_breach"].changed == [before["urgent"]["id"]]
    assert set(runs["sla_breach"].refused) == {before["frozen"]["id"]}
    assert f"skipped ticket {before['frozen']['id']}" in caplog.text
    assert "a frozen ticket keeps its flags" in caplog.text
    now = tickets(desk)
    assert {s: t["sla_breached"] for s, t in now.items()} == {
        "urgent": True,
        "someday": False,
        "frozen": False,
        "done": False,
    }
    # Through the record service: a history entry by the system, and the event.
    last = history(desk, f"{TICKETS}/{before['urgent']['id']}")[-1]
    assert (last["changed_by"], last["changes"]) == (
        "system",
        {"sla_breached": {"old": False, "new": True}},
    )
    [event] = events_of(desk, "ticket.sla_breached")
    assert (event.entity, event.record_id, event.actor) == (
        "ticket",
        before["urgent"]["id"],
        "system",
    )
    assert event.payload["automation"] == "sla_breach"
    assert event.payload["changes"] == {"sla_breached": [False, True]}

    # Not due again within its period; once due, the flagged ticket matches no more.
    assert run_due(at(desk, T0 + timedelta(hours=5, minutes=2))) == {}
    again = run_due(at(desk, T0 + timedelta(hours=5, minutes=5)))
    assert again["sla_breach"].changed == []
    assert len(events_of(desk, "ticket.sla_breached")) == 1
    assert tickets(desk)["urgent"]["version"] == now["urgent"]["version"]

    later = run_due(at(desk, T0 + timedelta(hours=73)))
    assert later["sla_breach"].changed == [before["someday"]["id"]]
    flagged = Counter(e.record_id for e in events_of(desk, "ticket.sla_breached"))
    assert flagged == {before["urgent"]["id"]: 1, before["someday"]["id"]: 1}


def test_a_run_selects_by_the_clock_it_is_given(desk: Api) -> None:
    with writing(desk.engine) as conn:
        ctx = at(desk, T0 + timedelta(hours=3)).system_context(conn)
        automation = ctx.catalog.of_kind(AUTOMATION)["sla_breach"]
        assert run_scheduled(RecordService(ctx), automation).changed == []
    with writing(desk.engine) as conn:
        ctx = at(desk, T0 + timedelta(hours=4, seconds=1)).system_context(conn)
        run = run_scheduled(RecordService(ctx), automation)
    assert run.changed == [tickets(desk)["urgent"]["id"]]


def test_an_inactive_scheduled_automation_does_not_run(desk: Api) -> None:
    current = ok(desk.get(f"{AUTOMATIONS}/sla_breach"))
    ok(desk.put(f"{AUTOMATIONS}/sla_breach", {**current, "active": False}))
    assert run_due(at(desk, T0 + timedelta(hours=80))) == {}
    assert events_of(desk, "ticket.sla_breached") == []


def test_a_scheduled_automation_whose_steps_cant_end_its_condition_is_refused(
    desk: Api,
) -> None:
    refused = desk.post(
        AUTOMATIONS,
        {
            "name": "nag",
            "label": {"en": "Nag"},
            "entity": "ticket",
            "every_minutes": 5,
            "condition": "resolution_due < now()",
            "steps": [{"type": "set_fields", "values": {"status": '"in_progress"'}}],
            "event": "ticket.overdue",
        },
    )
    assert refused.status_code == 422, refused.text
    assert errors(refused) == {("/condition", "not_idempotent")}


def test_a_scheduled_automation_is_checked_for_sql_and_its_kind_of_steps(desk: Api) -> None:
    refused = desk.post(
        AUTOMATIONS,
        {
            "name": "odd",
            "label": {"en": "Odd"},
            "entity": "ticket",
            "every_minutes": 5,
            "condition": "changed(status)",
            "steps": [
                {"type": "set_fields", "values": {"sla_breached": "true"}},
                {"type": "create_record", "entity": "ticket", "values": {"subject": "subject"}},
            ],
            "event": "record.updated",
        },
    )
    assert refused.status_code == 422, refused.text
    assert errors(refused) == {
        ("/condition", "expression"),
        ("/steps/1/type", "scheduled_step"),
        ("/event", "reserved"),
    }
