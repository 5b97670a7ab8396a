"""Stage moves on every record write: before it, refuse a move that breaks its pipeline and
compute what entering the stage sets; after it, record the exit and entry, publish
`stage.changed`, and run the entered stage's follow-up actions."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import ENTERED_AT, LOST, PipelineDef, Stage
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import FieldError, MetacrmError, RuleError, Unprocessable
from metacrm.runtime.context import NoHook, Records
from metacrm.runtime.events import publish
from metacrm.runtime.pipelines import actions, history
from metacrm.runtime.pipelines.gates import conjuncts
from metacrm.runtime.record_rules import WriteContext
from metacrm.runtime.rules import holds
from metacrm.runtime.rules.compile_py import Fn

BLANK_VALUES = (None, "", [])


class StageMoves(NoHook):
    """The write hook of stage pipelines: gates before a move, history and actions after."""

    def before_write(
        self,
        records: Records,
        entity: EntityDef,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> dict[str, Any]:
        return before_write(records, entity, before, after)

    def after_write(
        self,
        records: Records,
        entity: EntityDef,
        record_id: str,
        action: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        after_write(records, entity, record_id, before, after)


def before_write(
    records: Records,
    entity: EntityDef,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> dict[str, Any]:
    """Check a stage move (transition, gate, required fields, lost reason); returns the values
    entering the stage sets. Raises Unprocessable naming every unmet condition."""
    entering = [
        (pipeline, stage)
        for pipeline in records.ctx.catalog.pipelines_of(entity.name)
        if (stage := entered(pipeline, before, after)) is not None
    ]
    if not entering:
        return {}
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    seen = _with_formulas(records.ctx.rules(), entity, after, before)
    for pipeline, stage in entering:
        errors.extend(_move_errors(records, entity, pipeline, stage, before, seen))
        values.update(_entry_values(records, entity, pipeline, stage, before, after))
    if not errors:
        # Actions see the record as it will be saved; they run only on a move that may happen.
        record = {**after, **values}
        for _, stage in entering:
            found, problems = actions.field_values(records, entity, stage, before, record)
            values.update(found)
            errors.extend(problems)
    if errors:
        raise Unprocessable(f"the {entity.name} can't enter this stage", errors=errors)
    return values


def after_write(
    records: Records,
    entity: EntityDef,
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """Record stage exits and entries, publish `stage.changed`, run follow-up actions."""
    for pipeline in records.ctx.catalog.pipelines_of(entity.name):
        old = before.get(pipeline.field) if before is not None else None
        new = after.get(pipeline.field)
        if old == new:
            continue
        user = records.ctx.user.id
        if old is not None:
            history.leave(
                records.ctx.conn, entity.name, pipeline.name, [record_id], records.ctx.now, user
            )
        if new is not None:
            entry = [(record_id, new)]
            history.enter(
                records.ctx.conn, entity.name, pipeline.name, entry, records.ctx.now, user
            )
        stage = pipeline.stage(new)
        publish(
            records.ctx,
            "stage.changed",
            entity=entity.name,
            record_id=record_id,
            payload={
                "entity": entity.name,
                "id": record_id,
                "pipeline": pipeline.name,
                "from": old,
                "to": new,
                "category": stage.category if stage else None,
            },
        )
        if stage is not None:
            actions.follow_up(records, entity, stage, record_id, before, after)


def entered(
    pipeline: PipelineDef, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> Stage | None:
    """The stage this write enters: on create the initial one, on update a different one."""
    new = after.get(pipeline.field)
    if new is None or (before is not None and before.get(pipeline.field) == new):
        return None
    return pipeline.stage(new)


def _move_errors(
    records: Records,
    entity: EntityDef,
    pipeline: PipelineDef,
    stage: Stage,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> list[FieldError]:
    errors = []
    label = stage.label.get("en", stage.key)
    old = before.get(pipeline.field) if before is not None else None
    if old is not None and not pipeline.allows(old, stage.key):
        onward = [t["to"] for t in pipeline.doc.get("transitions", ()) if t["from"] == old]
        allowed = ", ".join(onward[0]) if onward and onward[0] else "nowhere"
        errors.append(
            FieldError(
                pipeline.field,
                "transition",
                f"can't move from {old!r} to {stage.key!r}; from {old!r} it may move to {allowed}",
            )
        )
    if stage.entry_condition:
        context = records.ctx.rules()
        env = context.env(entity, after, before)
        for text, check in _gate_conditions(context, entity, stage.entry_condition):
            if not holds(check, env):
                errors.append(FieldError(pipeline.field, "gate", f"entering {label} needs {text}"))
    for name in stage.required_fields:
        if after.get(name) in BLANK_VALUES:
            errors.append(FieldError(name, "required_for_stage", f"is required to enter {label}"))
    reason = pipeline.lost_reason_field
    if stage.category == LOST and reason and after.get(reason) in BLANK_VALUES:
        errors.append(FieldError(reason, "lost_reason", f"give a reason to enter {label}"))
    return errors


def _with_formulas(
    context: WriteContext,
    entity: EntityDef,
    record: dict[str, Any],
    before: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The record with its formula fields computed, so a gate can read `days_in_stage` (the
    days spent in the stage being left) like any other field."""
    seen = dict(record)
    env = context.env(entity, record, before)
    for field in entity.fields:
        if field.type == "formula" and field.expression:
            fn = context.compiled(entity, field.expression, expect=None, sees_change=False)[1]
            try:
                seen[field.name] = fn(env)
            except MetacrmError:
                seen[field.name] = None
    return seen


def _gate_conditions(context: WriteContext, entity: EntityDef, text: str) -> list[tuple[str, Fn]]:
    """Each condition the gate joins with `and`, compiled; the whole gate if a part alone is not
    a condition of its own."""
    try:
        parts = conjuncts(text)
        return [(part, context.condition(entity, part, sees_change=True)) for part in parts]
    except RuleError:
        return [(text, context.condition(entity, text, sees_change=True))]


def _entry_values(
    records: Records,
    entity: EntityDef,
    pipeline: PipelineDef,
    stage: Stage,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> dict[str, Any]:
    """`stage_entered_at`, and the stage's probability unless this write sets one itself (on
    create: any value; on update: a value other than the stored one)."""
    values: dict[str, Any] = {}
    if entity.field(ENTERED_AT) is not None:
        values[ENTERED_AT] = records.ctx.now
    target = entity.field(pipeline.probability_field or "")
    if target is not None:
        previous = before.get(target.name) if before is not None else None
        if after.get(target.name) == previous:
            # A field whose bounds exclude the stage's probability keeps its value.
            with suppress(ValueProblem):
                values[target.name] = coerce(target, stage.probability)
    return values
