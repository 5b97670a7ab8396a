"""Handing a pending task to someone else, by hand (reassign) or by the clock (escalation):
the old task ends `reassigned`, a new one for the same step keeps whom the step first named."""

from __future__ import annotations

from sqlalchemy import Connection, select

from metacrm.platform.errors import Conflict, FieldError, Forbidden, Unprocessable
from metacrm.platform.ids import is_valid_id
from metacrm.platform.systables import users
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.instances import Approval, Task
from metacrm.runtime.approvals.transitions import PENDING, REASSIGNED
from metacrm.runtime.context import Records, RequestContext
from metacrm.runtime.events import publish
from metacrm.runtime.notifications import notify


def hand_over(
    ctx: RequestContext,
    approval: Approval,
    task: Task,
    to: str,
    *,
    by: str | None,
    action: str,
    comment: str | None = None,
) -> str:
    """Move a pending task of a claimed approval to `to`; returns the new task's id. `by` is
    who did it (None: the clock)."""
    conn, now = ctx.conn, ctx.now
    step = approval.current_step
    if step is None or task.step != step.index or task.status != PENDING:
        raise Conflict("the task is no longer pending")
    if not _active(conn, to):
        raise Unprocessable(
            "the task can't go there",
            errors=[FieldError("to", "not_found", f"no active user {to!r}")],
        )
    holders = {
        t.approver_id
        for t in instances.tasks(conn, approval.id, step=step.index)
        if t.status == PENDING
    }
    if to in holders:
        raise Conflict("they already hold a pending task of this step")
    if not instances.end_task(conn, task.id, REASSIGNED, now, comment):
        raise Conflict("the task is no longer pending")
    new_task = instances.add_task(conn, approval, step, to, now, original=task.named)
    instances.log(
        conn,
        approval,
        action,
        at=now,
        by=by,
        step=step.index,
        comment=comment,
        **{"from": task.approver_id, "to": to, "task": new_task},
    )
    publish(
        ctx,
        "approval.reassigned",
        payload={
            "approval": approval.id,
            "process": approval.process.name,
            "entity": approval.entity,
            "record_id": approval.record_id,
            "step": step.name,
            "from": task.approver_id,
            "to": to,
            "reason": action,
        },
        entity=approval.entity,
        record_id=approval.record_id,
        actor=by,
    )
    kind = "approval.escalated" if action == "escalated" else "approval.assigned"
    notify(
        conn,
        [to],
        kind,
        f"Approval needed: {approval.process.title}",
        f"Step {step.label.get('en', step.name)} for {approval.entity} {approval.record_id}"
        f" ({action} from {task.approver_id})",
        entity=approval.entity,
        record_id=approval.record_id,
    )
    return new_task


def _active(conn: Connection, user_id: str) -> bool:
    if not is_valid_id(user_id):
        return False
    stmt = select(users.c.id).where(users.c.id == user_id, users.c.is_active.is_(True))
    return conn.execute(stmt).first() is not None


def reassign(
    records: Records,
    approval_id: str,
    to: str,
    *,
    from_user: str | None = None,
    comment: str | None = None,
) -> Approval:
    """A task holder passes their own pending task on; an admin moves anyone's."""
    user = records.ctx.user
    source = from_user or user.id
    if source != user.id and not user.is_admin:
        raise Forbidden("only an admin may reassign someone else's task")
    before = instances.load(records.ctx.conn, approval_id)
    if not user.is_admin and not any(
        t.approver_id == user.id for t in instances.tasks(records.ctx.conn, before.id)
    ):
        raise Forbidden("only an approver of this approval or an admin may reassign its tasks")
    approval = instances.claim(records.ctx.conn, approval_id)
    task = next(
        (
            t
            for t in instances.tasks(records.ctx.conn, approval.id, step=approval.step)
            if t.approver_id == source and t.status == PENDING
        ),
        None,
    )
    if task is None:
        raise Conflict(f"{source} holds no pending task of the current step")
    hand_over(
        records.ctx,
        approval,
        task,
        to,
        by=user.id,
        action="reassigned",
        comment=comment,
    )
    return approval
