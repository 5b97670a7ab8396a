"""Whether a record action is available to the caller on a record now, and why not: the
permission it needs (the caller's roles, then the record, in SQL), a refusal before any change
(the approval lock), the hook it needs being registered, and its condition (in SQL, as a
filter runs, so formulas and lookups read as they do in lists)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Label, case, select

from metacrm.metadata.actions import ACTION, ActionDef, action_key
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import Forbidden, Locked, MetacrmError, NotFound, RuleError
from metacrm.runtime.context import Records, RequestContext
from metacrm.runtime.rules import Scope, SqlCompiler, check, parse
from metacrm.runtime.rules.operators import BOOLEAN

# Why an action is unavailable, from the first check that fails.
PERMISSION, REFUSED, HOOK, CONDITION = "permission", "refused", "hook", "condition"


@dataclass(frozen=True)
class Availability:
    action: ActionDef
    # None when available; else PERMISSION, REFUSED, HOOK or CONDITION.
    code: str | None = None
    # The reason as a label ({locale: text}).
    reason: Mapping[str, str] | None = None
    # What refused the change before it started (a Locked error, say), to raise as it is.
    refusal: MetacrmError | None = None

    @property
    def available(self) -> bool:
        return self.code is None

    def as_json(self) -> dict[str, Any]:
        action = self.action
        found: dict[str, Any] = {
            "name": action.name,
            "label": dict(action.label),
            "available": self.available,
        }
        if self.reason is not None:
            found["reason"] = dict(self.reason)
            found["reason_code"] = self.code
        if action.input_schema is not None:
            found["input_schema"] = action.input_schema
        return found


def actions_of(ctx: RequestContext, entity: EntityDef) -> list[ActionDef]:
    """The entity's actions, by name."""
    found: list[ActionDef] = ctx.catalog.of_kind_for(ACTION, entity.name)
    return found


def find_action(ctx: RequestContext, entity: EntityDef, name: str) -> ActionDef:
    found: ActionDef | None = ctx.catalog.of_kind(ACTION).get(action_key(entity.name, name))
    if found is None:
        raise NotFound(f"{entity.name} has no action named {name!r}")
    return found


def granted(records: Records, entity: EntityDef, actions: Sequence[ActionDef]) -> list[ActionDef]:
    """The actions the caller's roles could ever let them run (the permission on some records)."""
    return [a for a in actions if records.permissions.may(entity, a.permission)]


def judge(
    records: Records, entity: EntityDef, record_id: str, actions: Sequence[ActionDef]
) -> list[Availability]:
    """Each action's availability on the record for the caller (who may read it)."""
    permitted = {
        permission: _record_allows(records, entity, record_id, permission)
        for permission in {a.permission for a in actions}
    }
    refusal = _refusal(records, entity, record_id)
    hooks = records.ctx.host.registry.actions
    holds = conditions(records.ctx, entity, record_id, actions)
    judged = []
    for action in actions:
        missing = [
            s["name"] for s in action.steps if s["type"] == "hook" and s["name"] not in hooks
        ]
        if not permitted[action.permission]:
            judged.append(
                Availability(
                    action,
                    PERMISSION,
                    {"en": f"needs the right to {action.permission} this {entity.name}"},
                )
            )
        elif refusal is not None:
            judged.append(Availability(action, REFUSED, {"en": refusal.detail}, refusal))
        elif missing:
            message = f"needs the action hook {missing[0]!r}, which this server doesn't have"
            judged.append(Availability(action, HOOK, {"en": message}))
        elif holds.get(action.key, True) is not True:
            judged.append(Availability(action, CONDITION, _condition_reason(action, holds)))
        else:
            judged.append(Availability(action))
    return judged


def _record_allows(records: Records, entity: EntityDef, record_id: str, permission: str) -> bool:
    if not records.permissions.may(entity, permission):
        return False
    try:
        records.require_on(entity, permission, record_id, permission)
    except Forbidden:
        return False
    return True


def _refusal(records: Records, entity: EntityDef, record_id: str) -> MetacrmError | None:
    """What would refuse a change of the record by the caller before it starts (a pending
    approval's lock): the write hooks' `before_change`, as the record service calls it."""
    try:
        for hook in records.ctx.host.registry.write_hooks:
            hook.before_change(records, entity, record_id)
    except (Locked, Forbidden) as refused:
        return refused
    return None


def _condition_reason(action: ActionDef, holds: Mapping[str, bool | str]) -> Mapping[str, str]:
    found = holds.get(action.key)
    if isinstance(found, str):
        return {"en": f"the action's condition no longer fits the entity: {found}"}
    return action.unavailable_message or {"en": f"only when {action.condition}"}


def conditions(
    ctx: RequestContext, entity: EntityDef, record_id: str, actions: Sequence[ActionDef]
) -> dict[str, bool | str]:
    """Per action with a condition (by key): whether it holds for the record (one query for
    all of them), or why it can't be judged (it no longer checks against the entity)."""
    table = ctx.catalog.table(entity.name)
    compiler = SqlCompiler(
        entity,
        table,
        ctx.catalog.table,
        ctx.user_values(),
        ctx.now,
        resolve_entity=ctx.catalog.find,
    )
    found: dict[str, bool | str] = {}
    judged: list[str] = []
    columns: list[Label[Any]] = []
    for action in actions:
        if action.condition is None:
            continue
        try:
            checked = check(parse(action.condition), Scope(entity, ctx.catalog.find), BOOLEAN)
            condition = compiler.value(checked)
        except RuleError as error:
            found[action.key] = error.detail
            continue
        # Null (unknown) does not hold, as in a filter.
        columns.append(case((condition, 1), else_=0).label(f"c{len(columns)}"))
        judged.append(action.key)
    if not columns:
        return found
    stmt = compiler.apply(select(*columns).where(table.c.id == record_id))
    row = ctx.conn.execute(stmt).first()
    for key, value in zip(judged, row or [0] * len(judged), strict=True):
        found[key] = value == 1
    return found
