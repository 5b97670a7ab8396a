"""Triggered automations on every record write: before it, the automations whose condition holds
compute their `set_fields` into the same write; after it, their `update_related` and
`create_record` steps write other records through the record service, acting for the process.

Which automations matched is decided once, before the write, on the record as sent: a
`set_fields` that makes its own condition false doesn't stop its automation's later steps. The
decision rides to the after-write moment in the transaction's scratch space.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from metacrm.metadata.automations import (
    AUTOMATION,
    CREATE,
    CREATE_RECORD,
    SET_FIELDS,
    UPDATE,
    UPDATE_RELATED,
    AutomationDef,
)
from metacrm.metadata.model import EntityDef
from metacrm.metadata.values import ValueProblem, coerce, to_json
from metacrm.platform.db import transaction_state
from metacrm.platform.errors import FieldError, MetacrmError, NotFound, Unprocessable
from metacrm.platform.systables import users
from metacrm.runtime.context import MAX_ACTION_DEPTH, NoHook, Records
from metacrm.runtime.record_rules import WriteContext
from metacrm.runtime.rules import holds

# Transaction scratch space: the automations a write matched, by (entity, id, version before);
# and the chain of related writes under way, to name a cycle.
_MATCHED = "automations_matched"
_CHAIN = "automations_chain"


class AutomationLoop(Unprocessable):
    """Automations (with stage and approval actions) went deeper than a cycle-free chain can."""


class AutomationHook(NoHook):
    """The write hook of triggered automations."""

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


def automations_of(records: Records, entity: EntityDef, action: str) -> list[AutomationDef]:
    """The active automations of the entity that run on `action`, in name order."""
    found: list[AutomationDef] = records.ctx.catalog.memo(
        ("automations_on", entity.name, action),
        lambda: [
            a for a in records.ctx.catalog.of_kind_for(AUTOMATION, entity.name) if a.runs_on(action)
        ],
    )
    return found


def before_write(
    records: Records,
    entity: EntityDef,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> dict[str, Any]:
    """The values the matching automations' `set_fields` give, each step seeing the record with
    the values set before it; raises Unprocessable naming the automation when one fails."""
    automations = automations_of(records, entity, CREATE if before is None else UPDATE)
    if not automations:
        return {}
    context = records.ctx.rules()
    values: dict[str, Any] = {}
    setters: dict[str, AutomationDef] = {}
    later: list[str] = []
    for automation in automations:
        with _failing(automation, entity):
            if automation.condition is not None:
                seen = with_formulas(context, entity, {**after, **values}, before)
                condition = context.condition(entity, automation.condition, sees_change=True)
                if not holds(condition, context.env(entity, seen, before)):
                    continue
        for step in automation.steps:
            if step["type"] == SET_FIELDS:
                found = _step_values(context, automation, entity, step, {**after, **values}, before)
                values.update(found)
                setters.update(dict.fromkeys(found, automation))
        if automation.acts_after_write:
            later.append(automation.name)
    _check_references(records, entity, values, setters)
    matched: dict[tuple[str, str, int], list[str]] = transaction_state(records.ctx.conn).setdefault(
        _MATCHED, {}
    )
    # Set or cleared on every write: an earlier attempt at this write that was refused must
    # not leave its decision for this one.
    key = _key(entity, str(after["id"]), before)
    if later:
        matched[key] = later
    else:
        matched.pop(key, None)
    return values


def after_write(
    records: Records,
    entity: EntityDef,
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """Run the `update_related` and `create_record` steps of the automations this write matched,
    in order."""
    if not automations_of(records, entity, CREATE if before is None else UPDATE):
        return
    state = transaction_state(records.ctx.conn)
    matched = state.get(_MATCHED, {}).pop(_key(entity, record_id, before), [])
    known = records.ctx.catalog.of_kind(AUTOMATION)
    for name in matched:
        automation: AutomationDef = known[name]
        for step in automation.steps:
            if step["type"] == UPDATE_RELATED:
                _update_related(records, automation, entity, step, record_id, before, after)
            elif step["type"] == CREATE_RECORD:
                _create_record(records, automation, entity, step, record_id, before, after)


def _key(
    entity: EntityDef, record_id: str, before: Mapping[str, Any] | None
) -> tuple[str, str, int]:
    # A record is written at most once per version, and both moments see the same `before`.
    return entity.name, record_id, int(before["version"]) if before is not None else 0


def _step_values(
    context: WriteContext,
    automation: AutomationDef,
    entity: EntityDef,
    step: Mapping[str, Any],
    record: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A `set_fields` step's values, all computed on the record as it stood before the step; a
    value the field can't take refuses the write, naming the field and the automation."""
    values: dict[str, Any] = {}
    errors = []
    for name, text in step["values"].items():
        field = entity.field(name)
        try:
            if field is None:
                raise ValueProblem("unknown_field", f"{entity.name} has no field {name!r} any more")
            raw = context.value(entity, text, record, before, sees_change=True)
            values[name] = coerce(field, to_json(raw))
            if field.required and values[name] in (None, "", []):
                raise ValueProblem("required", "is required and can't be emptied")
        except ValueProblem as problem:
            errors.append(_set_error(automation, name, problem.message))
        except MetacrmError as problem:
            # An expression that no longer fits the metadata, or a value out of range.
            errors.append(_set_error(automation, name, problem.detail))
    if errors:
        raise Unprocessable(
            f"the {entity.name} can't be saved: an automation failed", errors=errors
        )
    return values


def _set_error(automation: AutomationDef, name: str, message: str) -> FieldError:
    return FieldError(name, "automation", f"automation {automation.title!r} set it: {message}")


def _check_references(
    records: Records,
    entity: EntityDef,
    values: Mapping[str, Any],
    setters: Mapping[str, AutomationDef],
) -> None:
    """Lookups and users the automations set must exist, as they must when a client sends them."""
    conn, catalog = records.ctx.conn, records.ctx.catalog
    errors = []
    for name, value in values.items():
        field = entity.field(name)
        if value is None or field is None:
            continue
        if field.type == "lookup":
            table = catalog.table(field.target or "")
            found = select(table.c.id).where(table.c.id == value, table.c.deleted_at.is_(None))
        elif field.type == "user" or name == "owner":
            found = select(users.c.id).where(users.c.id == value, users.c.is_active.is_(True))
        else:
            continue
        if conn.execute(found).first() is None:
            message = f"automation {setters[name].title!r} set it to {value!r}, which is not found"
            errors.append(FieldError(name, "automation", message))
    if errors:
        raise Unprocessable(
            f"the {entity.name} can't be saved: an automation failed", errors=errors
        )


def with_formulas(
    context: WriteContext,
    entity: EntityDef,
    record: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> Mapping[str, Any]:
    """The record with its formula fields computed, so a condition reads them like any field."""
    formulas = [f for f in entity.fields if f.type == "formula" and f.expression]
    if not formulas:
        return record
    seen = dict(record)
    env = context.env(entity, record, before)
    for field in formulas:
        fn = context.compiled(entity, field.expression or "", expect=None, sees_change=False)[1]
        try:
            seen[field.name] = fn(env)
        except MetacrmError:
            seen[field.name] = None
    return seen


def _update_related(
    records: Records,
    automation: AutomationDef,
    entity: EntityDef,
    step: Mapping[str, Any],
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """Update the record the lookup points at (nothing when it is empty or in the recycle bin)
    with values computed over this record, as a write of the process."""
    lookup = step["lookup"]
    target_id = after.get(lookup)
    field = entity.field(lookup)
    if not target_id or field is None or field.target is None:
        return
    catalog = records.ctx.catalog
    with _failing(automation, entity):
        target = catalog.entity(field.target)
        data = _data(records.ctx.rules(), entity, step, before, after)
    acting = _acting(records, automation, entity, record_id, f"{target.name} {target_id}")
    try:
        acting.read_row(target, str(target_id))
    except NotFound:
        return
    with _chained(records, automation, entity, record_id, f"{target.name} {target_id}"):
        try:
            acting.update(target.name, str(target_id), data)
        except AutomationLoop:
            raise
        except Unprocessable as problem:
            raise Unprocessable(
                f"automation {automation.title!r}: the {target.name} it updates can't take the "
                f"change: {problem.detail}",
                errors=[
                    FieldError(f"{lookup}.{e.field}", e.code, e.message) for e in problem.errors
                ]
                or [FieldError(lookup, "automation", problem.detail)],
            ) from None


def _create_record(
    records: Records,
    automation: AutomationDef,
    entity: EntityDef,
    step: Mapping[str, Any],
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    target = step["entity"]
    with _failing(automation, entity):
        data = _data(records.ctx.rules(), entity, step, before, after)
    acting = _acting(records, automation, entity, record_id, f"a new {target}")
    with _chained(records, automation, entity, record_id, f"a new {target}"):
        try:
            acting.create(target, data)
        except AutomationLoop:
            raise
        except Unprocessable as problem:
            raise Unprocessable(
                f"automation {automation.title!r}: creating a {target} failed: {problem.detail}",
                errors=[
                    FieldError(f"{target}.{e.field}", e.code, e.message) for e in problem.errors
                ],
            ) from None


def _data(
    context: WriteContext,
    entity: EntityDef,
    step: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> dict[str, Any]:
    """A step's values computed over this record as written, as a client would send them."""
    return {
        name: to_json(context.value(entity, text, after, before, sees_change=True))
        for name, text in step["values"].items()
    }


def _acting(
    records: Records, automation: AutomationDef, entity: EntityDef, record_id: str, what: str
) -> Records:
    """The record service acting for the automation, unless the chain of process actions is
    already as deep as a cycle-free one can be: then the write is refused, naming the chain."""
    if records.ctx.depth < MAX_ACTION_DEPTH:
        return records.elevated()
    chain = [
        *transaction_state(records.ctx.conn).get(_CHAIN, []),
        _link(automation, entity, record_id, what),
    ]
    raise AutomationLoop(
        f"automations triggered each other more than {MAX_ACTION_DEPTH} levels deep, so the change "
        f"was stopped: {' → '.join(chain)}; change their conditions so that the chain ends",
        errors=[FieldError("", "automation_loop", " → ".join(chain))],
    )


def _link(automation: AutomationDef, entity: EntityDef, record_id: str, what: str) -> str:
    return f"{automation.name} ({entity.name} {record_id} → {what})"


@contextmanager
def _chained(
    records: Records, automation: AutomationDef, entity: EntityDef, record_id: str, what: str
) -> Iterator[None]:
    chain: list[str] = transaction_state(records.ctx.conn).setdefault(_CHAIN, [])
    chain.append(_link(automation, entity, record_id, what))
    try:
        yield
    finally:
        chain.pop()


@contextmanager
def _failing(automation: AutomationDef, entity: EntityDef) -> Iterator[None]:
    """An expression that can't be evaluated (one that no longer fits the metadata, a value out
    of range) refuses the write with a 422 naming the automation."""
    try:
        yield
    except MetacrmError as problem:
        raise Unprocessable(
            f"automation {automation.title!r} on {entity.name} failed: {problem.detail}",
            errors=[FieldError("", "automation", f"{automation.name}: {problem.detail}")],
        ) from None
