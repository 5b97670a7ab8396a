"""The periodic job of scheduled automations: every minute, each active scheduled automation
whose period has passed runs once, as the system user, at the services' clock.

A run is claimed in the transaction that does it (`mc_automation_runs`), so two schedulers (two
serving processes without Redis, say) never run one automation twice for one period, and a run
that fails leaves no claim: it is tried again at the next tick.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from metacrm.metadata.automations import AUTOMATION, AutomationDef
from metacrm.platform.clock import as_utc
from metacrm.platform.systables import automation_runs
from metacrm.runtime.automations import ScheduledRun, run_scheduled
from metacrm.runtime.records import RecordService
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services

SCHEDULED_TASK = "automations.scheduled"
SCHEDULED_EVERY_SECONDS = 60.0
# The timer's ticks drift by a little: a run counts as due this much before its period is over.
EARLY = timedelta(seconds=10)

log = logging.getLogger("metacrm.automations")


def register(registry: RuntimeRegistry) -> None:
    registry.task(SCHEDULED_TASK, run_scheduled_automations, every=SCHEDULED_EVERY_SECONDS)


def run_scheduled_automations(services: Services) -> None:
    """The periodic job."""
    run_due(services)


def run_due(services: Services) -> dict[str, ScheduledRun]:
    """Run every scheduled automation that is due, each in its own transaction; one that fails
    is logged and doesn't hold up the others. Returns what each run did."""
    with services.reading() as conn:
        names = sorted(
            name
            for name, automation in services.catalog(conn).of_kind(AUTOMATION).items()
            if automation.scheduled and automation.active
        )
    done: dict[str, ScheduledRun] = {}
    for name in names:
        try:
            with services.writing() as conn:
                ctx = services.system_context(conn)
                automation = ctx.catalog.of_kind(AUTOMATION).get(name)
                if automation is None or not (automation.scheduled and automation.active):
                    continue
                if _claim(conn, automation, ctx.now):
                    done[name] = run_scheduled(RecordService(ctx), automation)
        except Exception:
            log.exception("scheduled automation %s failed; it is tried again next time", name)
    return done


def _claim(conn: Connection, automation: AutomationDef, now: datetime) -> bool:
    """Whether this run is due and now ours (its time recorded in this transaction)."""
    name = automation.name
    row = conn.execute(
        select(automation_runs.c.last_run_at).where(automation_runs.c.name == name)
    ).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(automation_runs).values(name=name, last_run_at=now))
        except IntegrityError:
            return False  # another scheduler's first run
        return True
    period = timedelta(minutes=automation.every_minutes or 0)
    if now < as_utc(row.last_run_at) + period - EARLY:
        return False
    claimed = conn.execute(
        update(automation_runs)
        .where(automation_runs.c.name == name, automation_runs.c.last_run_at == row.last_run_at)
        .values(last_run_at=now)
    ).rowcount
    return bool(claimed == 1)
