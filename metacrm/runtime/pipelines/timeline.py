"""One record's way through its pipeline: the stage it is in and for how long, per stage the
planned date beside the actual visits, and the raw stage history. Planned dates are set here
too, by anyone who may change the record."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select

from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.pipelines import PipelineDef
from metacrm.metadata.roles import HIDDEN
from metacrm.metadata.values import ValueProblem, coerce, to_json
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import FieldError, NotFound, Unprocessable
from metacrm.platform.systables import stage_plans
from metacrm.runtime.context import Records
from metacrm.runtime.pipelines import history

_PLANNED = FieldDef.from_doc({"name": "planned_date", "type": "date"})
_SECONDS_PER_DAY = 86400


def timeline(
    records: Records, entity_name: str, record_id: str, pipeline_name: str | None = None
) -> dict[str, Any]:
    """404 when the caller may not read the record, or its entity has no such pipeline."""
    entity = records.ctx.catalog.entity(entity_name)
    row, reading = records.read_row(entity, record_id)
    pipeline = _pipeline(records, entity, pipeline_name)
    if reading.policy(row).level(pipeline.field) == HIDDEN:
        # Some role shows the field, but not on this record (one the caller doesn't own, say):
        # its stages would tell what the record hides.
        raise NotFound(f"{entity.name} has no pipeline named {pipeline.name!r}")
    visits = history.visits(records.ctx.conn, entity.name, pipeline.name, record_id)
    plans = _plans(records, entity, record_id)
    current = row._mapping[pipeline.field]
    open_visit = next((v for v in reversed(visits) if v.exited_at is None), None)
    entered_at = as_utc(open_visit.entered_at) if open_visit is not None else None
    stages = []
    for stage in pipeline.stages:
        mine = [v for v in visits if v.stage == stage.key]
        exits = [as_utc(v.exited_at) for v in mine if v.exited_at is not None]
        seconds = sum(
            (
                (as_utc(v.exited_at) if v.exited_at else records.ctx.now) - as_utc(v.entered_at)
            ).total_seconds()
            for v in mine
        )
        stages.append(
            {
                "key": stage.key,
                "label": stage.label,
                "category": stage.category,
                "probability": stage.probability,
                "forecast_category": stage.forecast_category,
                "target_days": stage.target_days,
                "planned_date": to_json(plans.get(stage.key)),
                "first_entered_at": to_json(as_utc(mine[0].entered_at)) if mine else None,
                "last_exited_at": to_json(max(exits)) if exits else None,
                "days_spent": round(seconds / _SECONDS_PER_DAY, 2),
                "visits": len(mine),
            }
        )
    return {
        "entity": entity.name,
        "id": record_id,
        "pipeline": pipeline.name,
        "current": {
            "stage": current,
            "entered_at": to_json(entered_at),
            "days_in_stage": _days(entered_at, records.ctx.now),
        },
        "stages": stages,
        "history": [
            {
                "stage": v.stage,
                "entered_at": to_json(as_utc(v.entered_at)),
                "entered_by": v.entered_by,
                "exited_at": to_json(as_utc(v.exited_at)) if v.exited_at else None,
                "exited_by": v.exited_by,
            }
            for v in visits
        ],
    }


def set_plan(
    records: Records,
    entity_name: str,
    record_id: str,
    body: Any,
    pipeline_name: str | None = None,
) -> dict[str, Any]:
    """Set (a date) or remove (null) the planned date of each stage named; returns the
    timeline. The caller must be allowed to change the record."""
    entity = records.ctx.catalog.entity(entity_name)
    records.read_row(entity, record_id)
    pipeline = _pipeline(records, entity, pipeline_name)
    records.permissions.require(entity, "update")
    records.require_on(entity, "update", record_id, "change")
    planned = _planned_dates(pipeline, body)
    conn = records.ctx.conn
    mine = (stage_plans.c.entity == entity.name) & (stage_plans.c.record_id == record_id)
    if planned:
        conn.execute(delete(stage_plans).where(mine, stage_plans.c.stage.in_(list(planned))))
    rows = [
        {"entity": entity.name, "record_id": record_id, "stage": key, "planned_date": day}
        for key, day in planned.items()
        if day is not None
    ]
    if rows:
        conn.execute(stage_plans.insert(), rows)
    return timeline(records, entity_name, record_id, pipeline.name)


def _planned_dates(pipeline: PipelineDef, body: Any) -> dict[str, date | None]:
    if not isinstance(body, dict):
        raise Unprocessable(
            "the plan must be a JSON object of stage keys and dates",
            errors=[FieldError("", "type", "not an object")],
        )
    planned: dict[str, date | None] = {}
    errors = []
    for key, value in body.items():
        if pipeline.stage(key) is None:
            errors.append(FieldError(key, "unknown_stage", f"{pipeline.name} has no stage {key!r}"))
            continue
        try:
            planned[key] = coerce(_PLANNED, value)
        except ValueProblem as problem:
            errors.append(FieldError(key, problem.code, problem.message))
    if errors:
        raise Unprocessable("the plan is not valid", errors=errors)
    return planned


def _plans(records: Records, entity: EntityDef, record_id: str) -> dict[str, date]:
    rows = records.ctx.conn.execute(
        select(stage_plans.c.stage, stage_plans.c.planned_date).where(
            stage_plans.c.entity == entity.name, stage_plans.c.record_id == record_id
        )
    )
    return {stage: planned for stage, planned in rows}


def _pipeline(records: Records, entity: EntityDef, name: str | None) -> PipelineDef:
    """The named pipeline of the entity, or its first by name; one on a field the caller can't
    see is as absent as none."""
    shown = records.permissions.view(entity, probe=False)
    found = [
        p
        for p in sorted(records.ctx.catalog.pipelines_of(entity.name), key=lambda p: p.name)
        if (name is None or p.name == name) and shown.field(p.field) is not None
    ]
    if not found:
        raise NotFound(f"{entity.name} has no pipeline" + (f" named {name!r}" if name else ""))
    return found[0]


def _days(since: datetime | None, now: datetime) -> int | None:
    """Whole calendar days (UTC), as the `days_in_stage` formula counts them."""
    return None if since is None else (now.date() - since.date()).days
