"""Submitting a record to an approval process, by a user or by a write that made a process's
auto condition true.

Submission resolves every step whose condition holds at that moment and refuses (422, naming
the step) when one would have no approver or could not reach its quorum, so a broken org chart
is found by the submitter, not by nobody; the engine handles a step that finds nobody later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService


def find_process(service: RecordService, entity: EntityDef, name: str) -> ApprovalProcessDef:
    process = service.catalog.approval_processes.get(name)
    if process is None or process.entity != entity.name:
        raise NotFound(f"{entity.name} has no approval process named {name!r}")
    return process


def submit(
    service: RecordService,
    entity_name: str,
    record_id: str,
    process_name: str,
    *,
    comment: str | None = None,
) -> Approval:
    """A user submits a record: they must read it, may change it, and hold a submitter role
    (admins always may); the record must meet the entry condition."""
    entity = service.catalog.entity(entity_name)
    process = find_process(service, entity, process_name)
    service.read_row(entity, record_id)
    _require_submitter(service, entity, process, record_id)
    record = _locked_record(service, entity, process, record_id)
    if process.entry_condition and not condition_holds(
        service, entity, process.entry_condition, record
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
    return open_approval(service, entity, process, record_id, record, comment)


def auto_submit(
    service: RecordService, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> Approval | None:
    """The write that made the auto condition true submits the record, as its writer; nothing
    happens when the process already runs for it or the entry condition doesn't hold."""
    record = stored_record(service, entity, record_id)
    if instances.for_record(
        service.conn, entity.name, record_id, status=PENDING, process=process.name
    ):
        return None
    if process.entry_condition and not condition_holds(
        service, entity, process.entry_condition, record
    ):
        return None
    return open_approval(service, entity, process, record_id, record, None)


def _require_submitter(
    service: RecordService, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> None:
    user = service.user
    if user.is_admin:
        return
    if not service.permissions.may(entity, "update"):
        raise Forbidden(f"you may not change this {entity.name}, so you may not submit it")
    service.require_on(entity, "update", record_id, "submit")
    if process.submitters and not set(process.submitters) & set(user.roles):
        raise Forbidden(f"only {', '.join(process.submitters)} may submit to {process.title!r}")


def _locked_record(
    service: RecordService, entity: EntityDef, process: ApprovalProcessDef, record_id: str
) -> dict[str, Any]:
    """The record, its row locked (PostgreSQL) so two submissions of it queue; Conflict when
    the process already runs for it."""
    table = service.catalog.table(entity.name)
    service.conn.execute(select(table.c.id).where(table.c.id == record_id).with_for_update())
    if instances.for_record(
        service.conn, entity.name, record_id, status=PENDING, process=process.name
    ):
        raise Conflict(f"this {entity.name} already awaits approval in {process.title!r}")
    return stored_record(service, entity, record_id)


def open_approval(
    service: RecordService,
    entity: EntityDef,
    process: ApprovalProcessDef,
    record_id: str,
    record: dict[str, Any],
    comment: str | None,
) -> Approval:
    _check_steps(service, entity, process, record)
    approval = instances.create(
        service.conn,
        entity=entity.name,
        record_id=record_id,
        process=process,
        submitted_by=service.user.id,
        now=service.now,
    )
    instances.log(
        service.conn,
        approval,
        "submitted",
        at=service.now,
        by=service.user.id,
        comment=comment,
        process_version=process.version,
    )
    publish_event(service, approval, "submitted", comment=comment)
    run_actions(service, approval, process.actions("on_submit"), "on_submit")
    return start_from(service, approval, 0)


def _check_steps(
    service: RecordService,
    entity: EntityDef,
    process: ApprovalProcessDef,
    record: dict[str, Any],
) -> None:
    """Every step that would run as the record is now has enough approvers."""
    errors = []
    for step in process.steps:
        if step.condition and not condition_holds(service, entity, step.condition, record):
            continue
        named = resolve(service.conn, step.approvers, submitter=service.user.id, record=record)
        found = task_holders(service.conn, named, service.now)
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
