"""Scheduled automations: the records of an entity that a condition selects (in SQL, as the
system) get the automation's `set_fields` through the record service's bulk update, and each
changed record gets the automation's event.

The contract that makes a run safe to repeat: the steps make the condition false for the records
they change (they set a flag the condition excludes, say). Then a record is changed, and its
event published, once however often the job runs. Validation refuses steps that set no field the
condition reads; a run that leaves a changed record still matching logs a warning. A record the
entity's rules refuse is skipped and logged, and tried again at the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select

from metacrm.metadata.automations import SET_FIELDS, AutomationDef
from metacrm.metadata.model import EntityDef
from metacrm.metadata.values import ValueProblem, coerce, from_storage, to_json
from metacrm.platform.errors import FieldError, MetacrmError
from metacrm.runtime.automations.triggered import with_formulas
from metacrm.runtime.context import Records
from metacrm.runtime.events import publish
from metacrm.runtime.record_rules import WriteContext
from metacrm.runtime.rules import Scope, SqlCompiler, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

# Records read and written per bulk update; a run goes through every matching record.
BATCH = 500

log = logging.getLogger("metacrm.automations")


@dataclass
class ScheduledRun:
    """What one run did: the records changed (each got the event), and those refused."""

    changed: list[str] = field(default_factory=list)
    refused: dict[str, list[FieldError]] = field(default_factory=dict)


def run_scheduled(records: Records, automation: AutomationDef) -> ScheduledRun:
    """Change every record the condition selects now (the context's clock), in batches by id;
    each record at most once per run."""
    ctx = records.ctx
    entity = ctx.catalog.entity(automation.entity)
    table = ctx.catalog.table(entity.name)
    compiler = SqlCompiler(
        entity,
        table,
        ctx.catalog.table,
        ctx.user_values(),
        ctx.now,
        resolve_entity=ctx.catalog.find,
    )
    checked = check(parse(automation.condition or "true"), Scope(entity, ctx.catalog.find), BOOLEAN)
    condition = compiler.compile(checked)
    context = ctx.rules()
    run = ScheduledRun()
    last = ""
    while True:
        stmt = (
            select(table)
            .where(condition, table.c.deleted_at.is_(None), table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        )
        rows = ctx.conn.execute(compiler.apply(stmt)).all()
        if not rows:
            break
        changes: dict[str, dict[str, Any]] = {}
        diffs: dict[str, dict[str, list[Any]]] = {}
        for row in rows:
            current = {f.name: from_storage(f, row._mapping[f.name]) for f in entity.stored_columns}
            try:
                changed = _changed_values(context, automation, entity, current)
            except (ValueProblem, MetacrmError) as problem:
                message = getattr(problem, "detail", None) or str(problem)
                run.refused[row.id] = [FieldError("", "automation", message)]
                continue
            if changed:
                changes[row.id] = {k: to_json(v) for k, v in changed.items()}
                diffs[row.id] = {
                    k: [to_json(current.get(k)), to_json(v)] for k, v in changed.items()
                }
        if changes:
            outcome = records.update_many(entity.name, changes, all_or_none=False)
            run.refused.update(outcome.refused)
            for record_id in outcome.written:
                run.changed.append(record_id)
                if automation.event:
                    _publish(records, automation, entity, record_id, diffs[record_id])
            _warn_if_still_matching(records, automation, compiler, condition, outcome.written)
        last = rows[-1].id
        if len(rows) < BATCH:
            break
    for record_id, errors in run.refused.items():
        log.warning(
            "scheduled automation %s skipped %s %s: %s",
            automation.name,
            entity.name,
            record_id,
            "; ".join(f"{e.field} {e.message}".strip() for e in errors),
        )
    return run


def _changed_values(
    context: WriteContext,
    automation: AutomationDef,
    entity: EntityDef,
    current: Mapping[str, Any],
) -> dict[str, Any]:
    """The values the steps give the record that differ from what it holds."""
    values: dict[str, Any] = {}
    for step in automation.steps:
        if step["type"] != SET_FIELDS:
            continue
        record = with_formulas(context, entity, {**current, **values}, None)
        for name, text in step["values"].items():
            target = entity.field(name)
            if target is None:
                raise ValueProblem("unknown_field", f"{entity.name} has no field {name!r} any more")
            raw = context.value(entity, text, record)
            try:
                values[name] = coerce(target, to_json(raw))
            except ValueProblem as problem:
                raise ValueProblem(problem.code, f"{name} {problem.message}") from None
    return {k: v for k, v in values.items() if current.get(k) != v}


def _publish(
    records: Records,
    automation: AutomationDef,
    entity: EntityDef,
    record_id: str,
    changes: dict[str, list[Any]],
) -> None:
    publish(
        records.ctx,
        str(automation.event),
        entity=entity.name,
        record_id=record_id,
        payload={
            "entity": entity.name,
            "id": record_id,
            "automation": automation.name,
            "changes": changes,
        },
    )


def _warn_if_still_matching(
    records: Records,
    automation: AutomationDef,
    compiler: SqlCompiler,
    condition: ColumnElement[bool],
    written: list[str],
) -> None:
    """The contract's check after the fact: a record changed by this run that the condition
    still selects would be changed again by the next one."""
    if not written:
        return
    table = compiler.table
    stmt = compiler.apply(select(table.c.id).where(condition, table.c.id.in_(written)))
    still = list(records.ctx.conn.execute(stmt).scalars())
    if still:
        log.warning(
            "scheduled automation %s left %d record(s) still matching its condition (e.g. %s); "
            "its steps must make the condition false, or it changes them again every run",
            automation.name,
            len(still),
            ", ".join(still[:5]),
        )
