"""Running approvals once submitted: start steps, take answers, finish, recall.

Approvers are resolved when a step starts; submission has checked the steps that would run at
that moment (submission.py). Should a step still find no approver when it starts later (its
condition became true, a manager left), the task goes to the active admins, who can approve,
reject or reassign it, and the log says so; with no active admin either, or a quorum no one can
reach any more, the approval ends rejected. A step whose condition is false when it would start
is skipped; when no step is left, the approval is approved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from metacrm.metadata.approvals import StepDef
from metacrm.platform.errors import Conflict, Forbidden, NotFound
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.actions import run_actions
from metacrm.runtime.approvals.approvers import admins, resolve
from metacrm.runtime.approvals.conditions import condition_holds, stored_record
from metacrm.runtime.approvals.delegations import delegate_for
from metacrm.runtime.approvals.instances import Approval
from metacrm.runtime.approvals.transitions import (
    APPROVED,
    PENDING,
    RECALLED,
    REJECTED,
    quorum_reachable,
    step_outcome,
)
from metacrm.runtime.context import Records
from metacrm.runtime.events import publish
from metacrm.runtime.notifications import notify

# The process actions that run when an approval ends so.
FINAL_MOMENTS = {APPROVED: "on_approve", REJECTED: "on_reject"}


def publish_event(records: Records, approval: Approval, kind: str, **extra: Any) -> None:
    payload = {
        "approval": approval.id,
        "process": approval.process.name,
        "process_version": approval.process.version,
        "entity": approval.entity,
        "record_id": approval.record_id,
        "status": approval.status,
        **extra,
    }
    publish(
        records.ctx,
        f"approval.{kind}",
        payload=payload,
        entity=approval.entity,
        record_id=approval.record_id,
    )


# ---- steps ----------------------------------------------------------------------------------


def start_from(records: Records, approval: Approval, index: int) -> Approval:
    """Start the first step from `index` whose condition holds; approve when none is left."""
    entity = records.ctx.catalog.entity(approval.entity)
    for step in approval.process.steps[index:]:
        try:
            record = stored_record(records.ctx, entity, approval.record_id)
        except NotFound:
            record = {}
        if step.condition and not condition_holds(records.ctx, entity, step.condition, record):
            instances.log(
                records.ctx.conn,
                approval,
                "step_skipped",
                at=records.ctx.now,
                by=records.ctx.user.id,
                step=step.index,
            )
            continue
        return _assign(records, approval, step, record)
    return finish(records, approval, APPROVED)


def _assign(
    records: Records, approval: Approval, step: StepDef, record: dict[str, Any]
) -> Approval:
    conn, now = records.ctx.conn, records.ctx.now
    approval = instances.save_state(conn, approval, step=step.index)
    named = resolve(conn, step.approvers, submitter=approval.submitted_by, record=record)
    if not named:
        named = admins(conn)
        instances.log(
            conn,
            approval,
            "no_approver",
            at=now,
            by=records.ctx.user.id,
            step=step.index,
            assigned_to=named,
        )
    holders = task_holders(conn, named, now)
    if not quorum_reachable(step.mode, step.quorum, len(holders)):
        instances.log(
            conn,
            approval,
            "quorum_unreachable",
            at=now,
            by=records.ctx.user.id,
            step=step.index,
            approvers=len(holders),
        )
        return finish(records, approval, REJECTED)
    for holder, original in holders.items():
        instances.add_task(conn, approval, step, holder, now, original=original)
    instances.log(
        conn,
        approval,
        "step_started",
        at=now,
        by=records.ctx.user.id,
        step=step.index,
        approvers=list(holders),
    )
    notify_assigned(records, approval, step, list(holders))
    return approval


def task_holders(conn: Connection, named: list[str], now: datetime) -> dict[str, str | None]:
    """Who gets a task for each approver named (their delegate, if any, now) and whom each
    task stands for; one task per holder, so a delegate who is also named holds one."""
    holders: dict[str, str | None] = {}
    for approver in named:
        delegate = delegate_for(conn, approver, now)
        holders.setdefault(delegate or approver, approver if delegate else None)
    return holders


def notify_assigned(
    records: Records, approval: Approval, step: StepDef, holders: list[str]
) -> None:
    notify(
        records.ctx.conn,
        holders,
        "approval.assigned",
        f"Approval needed: {approval.process.title}",
        f"Step {step.label.get('en', step.name)} for {approval.entity} {approval.record_id}",
        entity=approval.entity,
        record_id=approval.record_id,
    )


# ---- answers --------------------------------------------------------------------------------


def decide(records: Records, approval_id: str, answer: str, comment: str | None = None) -> Approval:
    """The caller answers their pending task of the current step (APPROVED or REJECTED)."""
    conn, user = records.ctx.conn, records.ctx.user
    before = instances.load(conn, approval_id)
    if not any(t.approver_id == user.id for t in instances.tasks(conn, before.id)):
        raise Forbidden("only an approver of this approval may answer it")
    approval = instances.claim(conn, approval_id)
    step = approval.current_step
    mine = [
        t
        for t in instances.tasks(conn, approval.id, step=approval.step)
        if t.approver_id == user.id
    ]
    if step is None or not mine:
        raise Forbidden("you are not an approver of the current step")
    task = next((t for t in mine if t.status == PENDING), None)
    if task is None or not instances.end_task(conn, task.id, answer, records.ctx.now, comment):
        raise Conflict("you have already answered this step, or it is no longer yours")
    instances.log(
        conn,
        approval,
        answer,
        at=records.ctx.now,
        by=user.id,
        step=step.index,
        comment=comment,
        task=task.id,
    )
    statuses = [t.status for t in instances.tasks(conn, approval.id, step=step.index)]
    outcome = step_outcome(step.mode, step.quorum, statuses)
    if outcome is None:
        return approval
    instances.cancel_pending(conn, approval.id, records.ctx.now)
    if outcome == REJECTED:
        run_actions(records, approval, step.actions("on_reject"), "on_reject")
        return finish(records, approval, REJECTED)
    instances.log(conn, approval, "step_approved", at=records.ctx.now, by=user.id, step=step.index)
    publish_event(records, approval, "step_approved", step=step.name)
    run_actions(records, approval, step.actions("on_approve"), "on_approve")
    return start_from(records, approval, step.index + 1)


def finish(records: Records, approval: Approval, outcome: str) -> Approval:
    conn, now = records.ctx.conn, records.ctx.now
    instances.cancel_pending(conn, approval.id, now)
    approval = instances.save_state(conn, approval, status=outcome, finished_at=now)
    instances.log(conn, approval, outcome_action(outcome), at=now, by=records.ctx.user.id)
    publish_event(records, approval, outcome)
    notify(
        conn,
        [approval.submitted_by],
        f"approval.{outcome}",
        f"{approval.process.title}: {outcome}",
        f"{approval.entity} {approval.record_id}",
        entity=approval.entity,
        record_id=approval.record_id,
    )
    moment = FINAL_MOMENTS[outcome]
    run_actions(records, approval, approval.process.actions(moment), moment)
    return approval


def outcome_action(outcome: str) -> str:
    """The log line of an approval's end, apart from the answers that led to it."""
    return f"process_{outcome}"


def recall(records: Records, approval_id: str, comment: str | None = None) -> Approval:
    """The submitter (or an admin) withdraws a pending approval."""
    before = instances.load(records.ctx.conn, approval_id)
    if records.ctx.user.id != before.submitted_by and not records.ctx.user.is_admin:
        raise Forbidden("only the submitter or an admin may recall an approval")
    approval = instances.claim(records.ctx.conn, approval_id)
    holders = instances.cancel_pending(records.ctx.conn, approval.id, records.ctx.now)
    approval = instances.save_state(
        records.ctx.conn, approval, status=RECALLED, finished_at=records.ctx.now
    )
    instances.log(
        records.ctx.conn,
        approval,
        RECALLED,
        at=records.ctx.now,
        by=records.ctx.user.id,
        step=approval.step,
        comment=comment,
    )
    publish_event(records, approval, RECALLED, comment=comment)
    notify(
        records.ctx.conn,
        holders,
        "approval.recalled",
        f"{approval.process.title}: recalled",
        f"{approval.entity} {approval.record_id}",
        entity=approval.entity,
        record_id=approval.record_id,
    )
    run_actions(records, approval, approval.process.actions("on_recall"), "on_recall")
    return approval
