"""The steps of a record action, one small runner per kind: set fields, move a stage, create a
record, submit for approval, call a registered hook. Each writes through the record service
acting for the process (`records.elevated()`): validation, rules, gates, history and events
apply, and history names the caller."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from metacrm.metadata.actions import ActionDef
from metacrm.metadata.model import EntityDef
from metacrm.metadata.values import to_json
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.runtime import approvals
from metacrm.runtime.approvals.conditions import stored_record
from metacrm.runtime.context import Records

# Members of an action's result that its steps fill; a hook's result goes beside them.
RESERVED_RESULT = frozenset({"record", "created", "approvals"})

Step = Mapping[str, Any]


@dataclass
class Run:
    """One running action: where it runs, its input, and what its steps have done so far."""

    records: Records
    entity: EntityDef
    record_id: str
    action: ActionDef
    # The input as sent (checked), and as the rule language reads it (input.<key>).
    input: Mapping[str, Any]
    values: Mapping[str, Any]
    created: list[dict[str, str]] = field(default_factory=list)
    approvals: list[dict[str, str]] = field(default_factory=list)
    hooked: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, expressions: Mapping[str, str]) -> dict[str, Any]:
        """The values of expressions over the record as it is now, with the input in scope."""
        ctx = self.records.ctx
        record = stored_record(ctx, self.entity, self.record_id)
        rules = ctx.rules()
        env = rules.env(self.entity, record, None)
        env.input = self.values
        return {
            name: to_json(
                rules.compiled(
                    self.entity,
                    text,
                    expect=None,
                    sees_change=False,
                    inputs=self.action.input_types,
                )[1](env)
            )
            for name, text in expressions.items()
        }


def set_fields(run: Run, step: Step) -> None:
    run.records.elevated().update(run.entity.name, run.record_id, run.evaluate(step["values"]))


def move_stage(run: Run, step: Step) -> None:
    """An ordinary write of the pipeline's field: its gates and transitions apply."""
    name = step.get("pipeline")
    found = [
        p
        for p in run.records.ctx.catalog.pipelines_of(run.entity.name)
        if name is None or p.name == name
    ]
    if len(found) != 1:
        which = f"pipeline {name}" if name else f"the only pipeline of {run.entity.name}"
        raise Unprocessable(f"the step moves a stage of {which}, which is not there any more")
    update = {found[0].field: step["stage"]}
    run.records.elevated().update(run.entity.name, run.record_id, update)


def create_record(run: Run, step: Step) -> None:
    target = step["entity"]
    values = run.evaluate(step["values"])
    try:
        created = run.records.elevated().create(target, values)
    except Unprocessable as problem:
        # The caller sent no such record: name its entity with each field that failed.
        raise Unprocessable(
            f"creating a {target} failed: {problem.detail}",
            errors=[FieldError(f"{target}.{e.field}", e.code, e.message) for e in problem.errors],
            extra=problem.extra,
        ) from None
    run.created.append({"entity": target, "id": created["id"]})


def submit_approval(run: Run, step: Step) -> None:
    approval = approvals.submit(
        run.records.elevated(), run.entity.name, run.record_id, step["process"]
    )
    run.approvals.append({"id": approval["id"], "process": step["process"]})


def hook(run: Run, step: Step) -> None:
    """A Python step registered at start-up; its JSON object goes into the result."""
    name = step["name"]
    fn = run.records.ctx.host.registry.actions.get(name)
    if fn is None:
        raise Unprocessable(f"the action hook {name!r} is not registered in this server")
    found = fn(run.records.elevated(), run.entity, run.record_id, MappingProxyType(run.input))
    if found is None:
        return
    if not isinstance(found, Mapping):
        raise TypeError(f"action hook {name!r} returned {type(found).__name__}, not an object")
    taken = RESERVED_RESULT & set(found)
    if taken:
        raise ValueError(f"action hook {name!r} returned reserved keys {sorted(taken)}")
    run.hooked.update(to_json_object(found))


def to_json_object(value: Mapping[str, Any]) -> dict[str, Any]:
    """A hook's result as JSON (decimals, dates and times written as the API writes them)."""

    def convert(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {str(k): convert(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [convert(v) for v in item]
        return to_json(item)

    converted: dict[str, Any] = convert(value)
    return converted


RUNNERS: dict[str, Callable[[Run, Step], None]] = {
    "set_fields": set_fields,
    "move_stage": move_stage,
    "create_record": create_record,
    "submit_approval": submit_approval,
    "hook": hook,
}
