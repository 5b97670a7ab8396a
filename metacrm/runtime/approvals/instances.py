"""The stored side of approvals: approval rows, their tasks and their audit log.

An approval carries the process document it was submitted under, so its steps and actions
never change under it. Every change of an approval first *claims* it: a version-guarded
update of its row, which makes two racing decisions land one after the other (the loser sees
what the winner did) and never both on the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from metacrm.metadata.approvals import ApprovalProcessDef, StepDef
from metacrm.metadata.values import to_json
from metacrm.platform.clock import as_utc
from metacrm.platform.errors import Conflict, NotFound
from metacrm.platform.ids import new_id
from metacrm.platform.systables import approval_log, approval_tasks, approvals
from metacrm.runtime.approvals.transitions import CANCELLED, PENDING

# How often a claim re-reads an approval that changed under it before giving up.
CLAIM_ATTEMPTS = 5


@dataclass(frozen=True)
class Approval:
    id: str
    entity: str
    record_id: str
    process: ApprovalProcessDef
    status: str
    step: int
    submitted_by: str
    submitted_at: datetime
    finished_at: datetime | None
    version: int

    @property
    def current_step(self) -> StepDef | None:
        steps = self.process.steps
        return steps[self.step] if 0 <= self.step < len(steps) else None


@dataclass(frozen=True)
class Task:
    id: str
    approval_id: str
    step: int
    approver_id: str
    original_approver_id: str | None
    status: str
    assigned_at: datetime
    due_at: datetime | None
    reminded_at: datetime | None
    decided_at: datetime | None
    comment: str | None

    @property
    def named(self) -> str:
        """Whom the step named for this task, before delegations and escalations."""
        return self.original_approver_id or self.approver_id


def _approval(row: Any) -> Approval:
    return Approval(
        id=row.id,
        entity=row.entity,
        record_id=row.record_id,
        process=ApprovalProcessDef.from_doc(row.process_document, row.process_version),
        status=row.status,
        step=row.step,
        submitted_by=row.submitted_by,
        submitted_at=as_utc(row.submitted_at),
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
        version=row.version,
    )


def task_from_row(row: Any) -> Task:
    m = row._mapping
    times = {k: as_utc(m[k]) if m[k] else None for k in ("due_at", "reminded_at", "decided_at")}
    return Task(
        id=m["id"],
        approval_id=m["approval_id"],
        step=m["step"],
        approver_id=m["approver_id"],
        original_approver_id=m["original_approver_id"],
        status=m["status"],
        assigned_at=as_utc(m["assigned_at"]),
        comment=m["comment"],
        **times,
    )


def load(conn: Connection, approval_id: str) -> Approval:
    row = conn.execute(select(approvals).where(approvals.c.id == approval_id)).first()
    if row is None:
        raise NotFound(f"no approval with id {approval_id!r}")
    return _approval(row)


def for_record(
    conn: Connection,
    entity: str,
    record_id: str,
    *,
    status: str | None = None,
    process: str | None = None,
) -> list[Approval]:
    """A record's approvals, newest first."""
    stmt = select(approvals).where(approvals.c.entity == entity, approvals.c.record_id == record_id)
    if status is not None:
        stmt = stmt.where(approvals.c.status == status)
    if process is not None:
        stmt = stmt.where(approvals.c.process == process)
    stmt = stmt.order_by(approvals.c.submitted_at.desc(), approvals.c.id.desc())
    return [_approval(r) for r in conn.execute(stmt)]


def create(
    conn: Connection,
    *,
    entity: str,
    record_id: str,
    process: ApprovalProcessDef,
    submitted_by: str,
    now: datetime,
) -> Approval:
    approval_id = new_id()
    conn.execute(
        approvals.insert().values(
            id=approval_id,
            entity=entity,
            record_id=record_id,
            process=process.name,
            process_version=process.version,
            process_document=dict(process.doc),
            status=PENDING,
            step=0,
            submitted_by=submitted_by,
            submitted_at=now,
            version=1,
        )
    )
    return load(conn, approval_id)


def claim(conn: Connection, approval_id: str) -> Approval:
    """The pending approval, claimed for one change in this transaction (its version bumped
    under a guard); Conflict (409) when it is no longer pending."""
    for _ in range(CLAIM_ATTEMPTS):
        approval = load(conn, approval_id)
        if approval.status != PENDING:
            raise Conflict(f"the approval is {approval.status}, no longer pending")
        stmt = (
            update(approvals)
            .where(approvals.c.id == approval.id, approvals.c.version == approval.version)
            .values(version=approval.version + 1)
        )
        if conn.execute(stmt).rowcount == 1:
            return replace(approval, version=approval.version + 1)
    raise Conflict("the approval is being changed by someone else; try again")


def save_state(
    conn: Connection,
    approval: Approval,
    *,
    status: str | None = None,
    step: int | None = None,
    finished_at: datetime | None = None,
) -> Approval:
    """Change a claimed approval (its row is already ours in this transaction)."""
    values: dict[str, Any] = {}
    if status is not None:
        values["status"] = status
    if step is not None:
        values["step"] = step
    if finished_at is not None:
        values["finished_at"] = finished_at
    conn.execute(update(approvals).where(approvals.c.id == approval.id).values(values))
    return replace(approval, **values)


def tasks(conn: Connection, approval_id: str, *, step: int | None = None) -> list[Task]:
    stmt = select(approval_tasks).where(approval_tasks.c.approval_id == approval_id)
    if step is not None:
        stmt = stmt.where(approval_tasks.c.step == step)
    stmt = stmt.order_by(approval_tasks.c.assigned_at, approval_tasks.c.id)
    return [task_from_row(r) for r in conn.execute(stmt)]


def add_task(
    conn: Connection,
    approval: Approval,
    step: StepDef,
    approver_id: str,
    now: datetime,
    *,
    original: str | None = None,
) -> str:
    task_id = new_id()
    due = now + timedelta(hours=float(step.sla_hours)) if step.sla_hours is not None else None
    conn.execute(
        approval_tasks.insert().values(
            id=task_id,
            approval_id=approval.id,
            step=step.index,
            approver_id=approver_id,
            original_approver_id=original,
            status=PENDING,
            assigned_at=now,
            due_at=due,
        )
    )
    return task_id


def end_task(
    conn: Connection, task_id: str, status: str, now: datetime, comment: str | None = None
) -> bool:
    """Answer or close a pending task; False when it was no longer pending."""
    stmt = (
        update(approval_tasks)
        .where(approval_tasks.c.id == task_id, approval_tasks.c.status == PENDING)
        .values(status=status, decided_at=now, comment=comment)
    )
    return conn.execute(stmt).rowcount == 1


def cancel_pending(conn: Connection, approval_id: str, now: datetime) -> list[str]:
    """Close every task still pending (the step or the approval ended); returns their holders."""
    pending = [t for t in tasks(conn, approval_id) if t.status == PENDING]
    conn.execute(
        update(approval_tasks)
        .where(approval_tasks.c.approval_id == approval_id, approval_tasks.c.status == PENDING)
        .values(status=CANCELLED, decided_at=now)
    )
    return [t.approver_id for t in pending]


def mark_reminded(conn: Connection, task_id: str, now: datetime) -> bool:
    stmt = (
        update(approval_tasks)
        .where(
            approval_tasks.c.id == task_id,
            approval_tasks.c.status == PENDING,
            approval_tasks.c.reminded_at.is_(None),
        )
        .values(reminded_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def log(
    conn: Connection,
    approval: Approval,
    action: str,
    *,
    at: datetime,
    by: str | None,
    step: int | None = None,
    comment: str | None = None,
    **detail: Any,
) -> None:
    conn.execute(
        approval_log.insert().values(
            approval_id=approval.id,
            at=at,
            by=by,
            action=action,
            step=step,
            comment=comment,
            detail=detail,
        )
    )


def log_entries(conn: Connection, approval_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(approval_log)
        .where(approval_log.c.approval_id == approval_id)
        .order_by(approval_log.c.id)
    )
    return [
        {
            "at": to_json(as_utc(r.at)),
            "by": r.by,
            "action": r.action,
            "step": r.step,
            "comment": r.comment,
            "detail": r.detail,
        }
        for r in rows
    ]
