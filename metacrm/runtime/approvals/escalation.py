"""The clock's part: remind approvers past a step's SLA once, and hand a task still unanswered
after `escalate_after_hours` (twice the SLA unless set) to the approver's manager.

`run_escalations` is the periodic job; it runs in a context whose `now` the caller sets, so
tests (and catch-up runs) control the clock. An approver without an active manager keeps the
task; the log says so once. Each task is handled under its approval's claim, so a decision
racing the job is never overwritten.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from metacrm.platform.errors import Conflict
from metacrm.platform.systables import approval_log, approval_tasks, approvals, users
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.approvers import manager_of
from metacrm.runtime.approvals.delegations import delegate_for
from metacrm.runtime.approvals.handover import hand_over
from metacrm.runtime.approvals.instances import Approval, Task
from metacrm.runtime.approvals.transitions import PENDING
from metacrm.runtime.context import RequestContext
from metacrm.runtime.notifications import notify

NOT_ESCALATED = "escalation_failed"


def run_escalations(ctx: RequestContext) -> dict[str, int]:
    conn, now = ctx.conn, ctx.now
    counts = {"reminded": 0, "escalated": 0, "not_escalated": 0}
    for approval_id in _pending_approvals(conn):
        approval = instances.load(conn, approval_id)
        step = approval.current_step
        if step is None:
            continue
        for task in instances.tasks(conn, approval.id, step=step.index):
            if task.status != PENDING:
                continue
            after = step.escalate_after_hours
            if after is not None and task.assigned_at + timedelta(hours=after) <= now:
                outcome = _escalate(ctx, approval, task)
                counts[outcome] += 1
                if outcome == "escalated":
                    continue
            # Not escalated (not yet, or nobody to escalate to): a reminder is still due once.
            if task.due_at is not None and task.due_at <= now and task.reminded_at is None:
                counts["reminded"] += _remind(conn, approval, task, now)
    return counts


def _pending_approvals(conn: Connection) -> list[str]:
    """Approvals with a pending task; the stored process document decides what is due."""
    stmt = (
        select(approvals.c.id)
        .join(approval_tasks, approval_tasks.c.approval_id == approvals.c.id)
        .where(approvals.c.status == PENDING, approval_tasks.c.status == PENDING)
        .distinct()
    )
    return sorted(conn.execute(stmt).scalars())


def _remind(conn: Connection, approval: Approval, task: Task, now: datetime) -> int:
    if not instances.mark_reminded(conn, task.id, now):
        return 0
    notify(
        conn,
        [task.approver_id],
        "approval.reminder",
        f"Reminder: approval needed: {approval.process.title}",
        f"{approval.entity} {approval.record_id} has waited past its deadline",
        entity=approval.entity,
        record_id=approval.record_id,
    )
    instances.log(conn, approval, "reminded", at=now, by=None, step=task.step, task=task.id)
    return 1


def _escalate(ctx: RequestContext, approval: Approval, task: Task) -> str:
    conn, now = ctx.conn, ctx.now
    manager = manager_of(conn, task.approver_id)
    if manager is not None and not _is_active(conn, manager):
        manager = None
    target = (delegate_for(conn, manager, now) or manager) if manager else None
    if target is None or target == task.approver_id:
        _log_once(conn, approval, task, now, "the approver has no active manager")
        return "not_escalated"
    try:
        claimed = instances.claim(conn, approval.id)
        hand_over(ctx, claimed, task, target, by=None, action="escalated")
    except Conflict as conflict:
        _log_once(conn, approval, task, now, conflict.detail)
        return "not_escalated"
    return "escalated"


def _log_once(conn: Connection, approval: Approval, task: Task, now: datetime, why: str) -> None:
    logged = conn.execute(
        select(approval_log.c.detail).where(
            approval_log.c.approval_id == approval.id, approval_log.c.action == NOT_ESCALATED
        )
    ).scalars()
    if any(d.get("task") == task.id for d in logged):
        return
    instances.log(
        conn, approval, NOT_ESCALATED, at=now, by=None, step=task.step, task=task.id, reason=why
    )


def _is_active(conn: Connection, user_id: str) -> bool:
    stmt = select(users.c.is_active).where(users.c.id == user_id)
    return bool(conn.execute(stmt).scalar())
