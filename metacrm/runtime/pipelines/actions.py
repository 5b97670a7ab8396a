"""What entering a stage does besides the move: `set_field` values computed into the same write,
and after it a `create_record` (through the record service, so the new record is validated
and audited like any other) or a `start_approval`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import Stage
from metacrm.metadata.values import ValueProblem, coerce, to_json
from metacrm.platform.errors import FieldError, MetacrmError, Unprocessable
from metacrm.runtime import approvals
from metacrm.runtime.context import Records


def field_values(
    records: Records,
    entity: EntityDef,
    stage: Stage,
    before: Mapping[str, Any] | None,
    record: Mapping[str, Any],
) -> tuple[dict[str, Any], list[FieldError]]:
    """The values the stage's `set_field` actions give, computed on the record as it will be
    saved; a value the field can't take is an error naming the field."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for action in stage.actions:
        if action["type"] != "set_field":
            continue
        field = entity.field(action["field"])
        if field is None:
            continue
        try:
            raw = records.ctx.rules().value(
                entity, action["expression"], record, before, sees_change=True
            )
            values[field.name] = coerce(field, to_json(raw))
        except ValueProblem as problem:
            errors.append(FieldError(field.name, "stage_action", _said(stage, problem.message)))
        except MetacrmError as problem:
            errors.append(FieldError(field.name, "stage_action", _said(stage, problem.detail)))
    return values, errors


def follow_up(
    records: Records,
    entity: EntityDef,
    stage: Stage,
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """Run the stage's `create_record` and `start_approval` actions, in order, acting for the
    process (the caller's permissions don't limit them)."""
    for action in stage.actions:
        if action["type"] == "create_record":
            _create_record(records, entity, stage, action, before, after)
        elif action["type"] == "start_approval":
            approvals.submit(records.elevated(), entity.name, record_id, action["process"])


def _create_record(
    records: Records,
    entity: EntityDef,
    stage: Stage,
    action: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    target = action["entity"]
    context = records.ctx.rules()
    values = {
        name: to_json(context.value(entity, text, after, before, sees_change=True))
        for name, text in action["values"].items()
    }
    try:
        records.elevated().create(target, values)
    except Unprocessable as problem:
        # The caller sent no such record; say which stage made it and which of its fields failed.
        raise Unprocessable(
            _said(stage, f"creating a {target} failed: {problem.detail}"),
            errors=[FieldError(f"{target}.{e.field}", e.code, e.message) for e in problem.errors],
        ) from None


def _said(stage: Stage, message: str) -> str:
    return f"entering {stage.label.get('en', stage.key)}: {message}"
