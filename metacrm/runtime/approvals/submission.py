"""Submitting a record to an approval process, by a user or by a write that made a process's
auto condition true.

Submission resolves every step whose condition holds at that moment and refuses (422, naming
the step) when one would have no approver or could not reach its quorum, so a broken org chart
is found by the submitter, not by nobody; the engine handles a step that finds nobody later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from metacrm.metadata.approvals import ApprovalProcessDef
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import Conflict, FieldError, Forbidden, NotFound, Unprocessable
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.actions import run_actions
from metacrm.runtime.approvals.approvers import resolve
from metacrm.runtime.approvals.conditions import condition_holds, stored_record
from metacrm.runtime.approvals.engine import publish_event, start_from, task_holders
from metacrm.runtime.approvals.instances import Approval
from metacrm.runtime.approvals.transitions import PENDING, quorum_reachable
from metacrm.runtime.context import Records


def find_process(records: Records, entity: EntityDef, name: str) -> ApprovalProcessDef:
    process = records.ctx.catalog.approval_processes.get(name)
    if process is None or process.entity != entity.name:
        raise NotFound(f"{entity.name} has no approval process named {name!r}")
    return process


def submit(
    records: Records,
    entity_name: str,
    record_id: str,
    process_name: str,
    *,
    comment: str | None = None,
) -> Approval:
    """A user submits a record: they must read it, may change it, and hold a submitter role
    (admins always may); the record must meet the entry condition."""
    entity = records.ctx.catalog.entity(entity_name)
    process = find_process(records, entity, process_name)
    records.read_row(entity, record_id)
    _require_submitter(records, entity, process, record_id)
    record = _locked_record(records, entity, process, record_id)
    if process.entry_condition and not condition_holds(
        records.ctx, entity, process.entry_condition, record
    ):
        raise Unprocessable(
            f"the {entity.name} does not meet the entry condition of {process.title!r}",
            errors=[
                FieldError(
                    "entry_condition",
                    "entry_condition",
                    f"must hold: {process.entry_condition}",
                )
            ],
        )
    return open_approval(records, entity, process, record_id, record, comment)


def auto_submit(
    records: Records, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> Approval | None:
    """The write that made the auto condition true submits the record, as its writer; nothing
    happens when the process already runs for it or the entry condition doesn't hold."""
    record = stored_record(records.ctx, entity, record_id)
    if instances.for_record(
        records.ctx.conn, entity.name, record_id, status=PENDING, process=process.name
    ):
        return None
    if process.entry_condition and not condition_holds(
        records.ctx, entity, process.entry_condition, record
    ):
        return None
    return open_approval(records, entity, process, record_id, record, None)


def _require_submitter(
    records: Records, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> None:
    user = records.ctx.user
    if user.is_admin:
        return
    if not records.permissions.may(entity, "update"):
        raise Forbidden(f"you may not change this {entity.name}, so you may not submit it")
    records.require_on(entity, "update", record_id, "submit")
    if process.submitters and not set(process.submitters) & set(user.roles):
        raise Forbidden(f"only {', '.join(process.submitters)} may submit to {process.title!r}")


def _locked_record(
    records: Records, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> dict[str, Any]:
    """The record, its row locked (PostgreSQL) so two submissions of it queue; Conflict when
    the process already runs for it."""
    table = records.ctx.catalog.table(entity.name)
    records.ctx.conn.execute(select(table.c.id).where(table.c.id == record_id).with_for_update())
    if instances.for_record(
        records.ctx.conn, entity.name, record_id, status=PENDING, process=process.name
    ):
        raise Conflict(f"this {entity.name} already awaits approval in {process.title!r}")
    return stored_record(records.ctx, entity, record_id)


def open_approval(
    records: Records,
    entity: EntityDef,
    process: ApprovalProcessDef,
    record_id: str,
    record: dict[str, Any],
    comment: str | None,
) -> Approval:
    _check_steps(records, entity, process, record)
    approval = instances.create(
        records.ctx.conn,
        entity=entity.name,
        record_id=record_id,
        process=process,
        submitted_by=records.ctx.user.id,
        now=records.ctx.now,
    )
    instances.log(
        records.ctx.conn,
        approval,
        "submitted",
        at=records.ctx.now,
        by=records.ctx.user.id,
        comment=comment,
        process_version=process.version,
    )
    publish_event(records, approval, "submitted", comment=comment)
    run_actions(records, approval, process.actions("on_submit"), "on_submit")
    return start_from(records, approval, 0)


def _check_steps(
    records: Records,
    entity: EntityDef,
    process: ApprovalProcessDef,
    record: dict[str, Any],
) -> None:
    """Every step that would run as the record is now has enough approvers."""
    errors = []
    for step in process.steps:
        if step.condition and not condition_holds(records.ctx, entity, step.condition, record):
            continue
        named = resolve(
            records.ctx.conn, step.approvers, submitter=records.ctx.user.id, record=record
        )
        found = task_holders(records.ctx.conn, named, records.ctx.now)
        at = f"steps/{step.index}"
        if not found:
            errors.append(FieldError(at, "no_approver", f"step {step.name!r} has no approver"))
        elif not quorum_reachable(step.mode, step.quorum, len(found)):
            errors.append(
                FieldError(
                    at,
                    "quorum_unreachable",
                    f"step {step.name!r} needs {step.quorum} approvals but has "
                    f"{len(found)} approver(s)",
                )
            )
    if errors:
        raise Unprocessable(f"{process.title!r} can't start: a step has no approver", errors=errors)
