"""Approvals as JSON, who may see them, and an approver's inbox.

An approval is visible to admins, its submitter, anyone who holds or held one of its tasks, and
whoever may read its record; to anyone else it does not exist (404), even when they may not read
the entity at all (where the record endpoints answer 403).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from metacrm.platform.clock import iso_utc
from metacrm.platform.errors import Forbidden, MetacrmError, NotFound
from metacrm.platform.systables import approval_tasks, approvals
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.instances import Approval, Task
from metacrm.runtime.approvals.transitions import APPROVED, PENDING, REJECTED
from metacrm.runtime.context import Records

INBOX_STATUSES = {PENDING: (PENDING,), APPROVED: (APPROVED,), REJECTED: (REJECTED,), "all": None}
INBOX_LIMIT = 500


def task_json(approval: Approval, task: Task) -> dict[str, Any]:
    steps = approval.process.steps
    step = steps[task.step] if task.step < len(steps) else None
    return {
        "id": task.id,
        "step": task.step,
        "step_name": step.name if step else None,
        "approver": task.approver_id,
        "original_approver": task.original_approver_id,
        "status": task.status,
        "assigned_at": iso_utc(task.assigned_at),
        "due_at": iso_utc(task.due_at),
        "reminded_at": iso_utc(task.reminded_at),
        "decided_at": iso_utc(task.decided_at),
        "comment": task.comment,
    }


def approval_json(records: Records, approval: Approval) -> dict[str, Any]:
    step = approval.current_step
    return {
        "id": approval.id,
        "entity": approval.entity,
        "record_id": approval.record_id,
        "process": approval.process.name,
        "process_label": dict(approval.process.label),
        "process_version": approval.process.version,
        "status": approval.status,
        "step": approval.step,
        "step_name": step.name if step else None,
        "submitted_by": approval.submitted_by,
        "submitted_at": iso_utc(approval.submitted_at),
        "finished_at": iso_utc(approval.finished_at),
        "version": approval.version,
        "tasks": [task_json(approval, t) for t in instances.tasks(records.ctx.conn, approval.id)],
        "log": instances.log_entries(records.ctx.conn, approval.id),
    }


def visible(records: Records, approval_id: str) -> Approval:
    """The approval if the caller may see it; NotFound otherwise."""
    approval = instances.load(records.ctx.conn, approval_id)
    user = records.ctx.user
    if user.is_admin or user.id == approval.submitted_by:
        return approval
    if any(
        user.id in (t.approver_id, t.original_approver_id)
        for t in instances.tasks(records.ctx.conn, approval.id)
    ):
        return approval
    try:
        records.read_row(records.ctx.catalog.entity(approval.entity), approval.record_id)
    except (NotFound, Forbidden):
        raise NotFound(f"no approval with id {approval_id!r}") from None
    return approval


def record_approvals(records: Records, entity_name: str, record_id: str) -> list[dict[str, Any]]:
    """A record the caller may read: its approvals, newest first, with tasks and log."""
    entity = records.ctx.catalog.entity(entity_name)
    records.read_row(entity, record_id)
    found = instances.for_record(records.ctx.conn, entity.name, record_id)
    return [approval_json(records, a) for a in found]


def inbox(records: Records, user_id: str, status: str) -> list[dict[str, Any]]:
    """The user's tasks, newest first, each with its approval and the record's title when the
    caller may read it."""
    stmt = (
        select(approval_tasks)
        .join(approvals, approvals.c.id == approval_tasks.c.approval_id)
        .where(approval_tasks.c.approver_id == user_id)
        .order_by(approval_tasks.c.assigned_at.desc(), approval_tasks.c.id.desc())
        .limit(INBOX_LIMIT)
    )
    wanted = INBOX_STATUSES[status]
    if wanted is not None:
        stmt = stmt.where(approval_tasks.c.status.in_(wanted))
    rows = records.ctx.conn.execute(stmt).all()
    loaded: dict[str, Approval] = {}
    items = []
    for row in rows:
        approval = loaded.get(row.approval_id)
        if approval is None:
            approval = loaded[row.approval_id] = instances.load(records.ctx.conn, row.approval_id)
        task = instances.task_from_row(row)
        items.append(
            {
                **task_json(approval, task),
                "approval": approval.id,
                "approval_status": approval.status,
                "process": approval.process.name,
                "process_label": dict(approval.process.label),
                "entity": approval.entity,
                "record_id": approval.record_id,
                "record_title": _title(records, approval),
                "submitted_by": approval.submitted_by,
            }
        )
    return items


def _title(records: Records, approval: Approval) -> Any:
    entity = records.ctx.catalog.find(approval.entity)
    if entity is None or not entity.title_field:
        return None
    try:
        record = records.get(entity.name, approval.record_id, fields=[entity.title_field])
    except MetacrmError:
        return None
    return record.get(entity.title_field)
