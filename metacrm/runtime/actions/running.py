"""Running a record action for the caller: the record must be one they may read (else 404) and
the action available to them on it (403 without its permission, 423 while an approval locks
the record, 409 when its condition doesn't hold), its input must match its input schema (422);
then its steps run in order in the caller's transaction, so a step that fails leaves nothing of
the steps before it, and the `action.executed` event is published with the rest."""

from __future__ import annotations

from typing import Any

from metacrm.platform.errors import Conflict, Forbidden, NotFound, RuleError, Unprocessable
from metacrm.runtime.actions.availability import (
    CONDITION,
    HOOK,
    PERMISSION,
    find_action,
    judge,
)
from metacrm.runtime.actions.inputs import checked_input, rule_values
from metacrm.runtime.actions.steps import RUNNERS, Run
from metacrm.runtime.context import Records
from metacrm.runtime.events import publish

EXECUTED = "action.executed"


def run_action(
    records: Records, entity_name: str, record_id: str, name: str, body: Any
) -> dict[str, Any]:
    """Run the action `name` on the record with the input `body`; returns the result."""
    ctx = records.ctx
    entity = ctx.catalog.entity(entity_name)
    records.read_row(entity, record_id)
    action = find_action(ctx, entity, name)
    if not records.permissions.may(entity, action.permission):
        raise Forbidden(
            f"{action.name} needs the right to {action.permission} {entity.name} records"
        )
    (judged,) = judge(records, entity, record_id, [action])
    if judged.refusal is not None:
        raise judged.refusal
    reason = dict(judged.reason or {})
    text = reason.get("en", "")
    if judged.code == PERMISSION:
        raise Forbidden(f"{action.name} {text}")
    if judged.code == HOOK:
        raise Conflict(f"{action.name} {text}", extra={"reason": reason, "reason_code": HOOK})
    if judged.code == CONDITION:
        raise Conflict(
            f"{action.name} is not available on this {entity.name}: {text}",
            extra={"reason": reason, "reason_code": CONDITION},
        )
    given = checked_input(ctx.catalog, action, body)
    run = Run(records, entity, record_id, action, given, rule_values(action, given))
    for index, step in enumerate(action.steps):
        try:
            RUNNERS[step["type"]](run, step)
        except (RuleError, NotFound) as error:
            # The step checked when the action was saved; what it names has changed since (a
            # field, a pipeline, a process), or a hook was given an id of nothing.
            raise Unprocessable(
                f"{_step(action.name, index, step)} can't run: {error.detail}"
            ) from None
        except Unprocessable as error:
            raise Unprocessable(
                f"{_step(action.name, index, step)}: {error.detail}",
                errors=error.errors,
                extra=error.extra,
            ) from None
    summary: dict[str, Any] = {}
    if run.created:
        summary["created"] = run.created
    if run.approvals:
        summary["approvals"] = run.approvals
    summary.update(run.hooked)
    publish(
        ctx,
        EXECUTED,
        payload={
            "entity": entity.name,
            "record_id": record_id,
            "action": action.name,
            "input": given,
            "result": summary,
        },
        entity=entity.name,
        record_id=record_id,
    )
    try:
        record = records.get(entity.name, record_id)
    except NotFound:
        # The action took the record out of what the caller may read (returned it to a pool).
        record = {"id": record_id}
    return {"record": record, **summary}


def _step(action: str, index: int, step: Any) -> str:
    return f"{action}, step {index + 1} ({step['type']})"
