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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from metacrm.metadata.approvals import StepDef
from metacrm.platform.errors import Conflict, Forbidden, NotFound
from metacrm.platform.events import publish
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
from metacrm.runtime.notifications import notify

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService

# The process actions that run when an approval ends so.
FINAL_MOMENTS = {APPROVED: "on_approve", REJECTED: "on_reject"}


def publish_event(service: RecordService, approval: Approval, kind: str, **extra: Any) -> None:
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
        service.conn,
        f"approval.{kind}",
        payload=payload,
        entity=approval.entity,
        record_id=approval.record_id,
        actor=service.user.id,
    )


# ---- steps ----------------------------------------------------------------------------------


def start_from(service: RecordService, approval: Approval, index: int) -> Approval:
    """Start the first step from `index` whose condition holds; approve when none is left."""
    entity = service.catalog.entity(approval.entity)
    for step in approval.process.steps[index:]:
        try:
            record = stored_record(service, entity, approval.record_id)
        except NotFound:
            record = {}
        if step.condition and not condition_holds(service, entity, step.condition, record):
            instances.log(
                service.conn,
                approval,
                "step_skipped",
                at=service.now,
                by=service.user.id,
                step=step.index,
            )
            continue
        return _assign(service, approval, step, record)
    return finish(service, approval, APPROVED)


def _assign(
    service: RecordService, approval: Approval, step: StepDef, record: dict[str, Any]
) -> Approval:
    conn, now = service.conn, service.now
    approval = instances.save_state(conn, approval, step=step.index)
    named = resolve(conn, step.approvers, submitter=approval.submitted_by, record=record)
    if not named:
        named = admins(conn)
        instances.log(
            conn,
            approval,
            "no_approver",
            at=now,
            by=service.user.id,
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
            by=service.user.id,
            step=step.index,
            approvers=len(holders),
        )
        return finish(service, approval, REJECTED)
    for holder, original in holders.items():
        instances.add_task(conn, approval, step, holder, now, original=original)
    instances.log(
        conn,
        approval,
        "step_started",
        at=now,
        by=service.user.id,
        step=step.index,
        approvers=list(holders),
    )
    notify_assigned(service, approval, step, list(holders))
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
    service: RecordService, approval: Approval, step: StepDef, holders: list[str]
) -> None:
    notify(
        service.conn,
        holders,
        "approval.assigned",
        f"Approval needed: {approval.process.title}",
        f"Step {step.label.get('en', step.name)} for {approval.entity} {approval.record_id}",
        entity=approval.entity,
        record_id=approval.record_id,
    )


# ---- answers --------------------------------------------------------------------------------


def decide(
    service: RecordService, approval_id: str, answer: str, comment: str | None = None
) -> Approval:
    """The caller answers their pending task of the current step (APPROVED or REJECTED)."""
    conn, user = service.conn, service.user
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
    if task is None or not instances.end_task(conn, task.id, answer, service.now, comment):
        raise Conflict("you have already answered this step, or it is no longer yours")
    instances.log(
        conn,
        approval,
        answer,
        at=service.now,
        by=user.id,
        step=step.index,
        comment=comment,
        task=task.id,
    )
    statuses = [t.status for t in instances.tasks(conn, approval.id, step=step.index)]
    outcome = step_outcome(step.mode, step.quorum, statuses)
    if outcome is None:
        return approval
    instances.cancel_pending(conn, approval.id, service.now)
    if outcome == REJECTED:
        run_actions(service, approval, step.actions("on_reject"), "on_reject")
        return finish(service, approval, REJECTED)
    instances.log(conn, approval, "step_approved", at=service.now, by=user.id, step=step.index)
    publish_event(service, approval, "step_approved", step=step.name)
    run_actions(service, approval, step.actions("on_approve"), "on_approve")
    return start_from(service, approval, step.index + 1)


def finish(service: RecordService, approval: Approval, outcome: str) -> Approval:
    conn, now = service.conn, service.now
    instances.cancel_pending(conn, approval.id, now)
    approval = instances.save_state(conn, approval, status=outcome, finished_at=now)
    instances.log(conn, approval, outcome_action(outcome), at=now, by=service.user.id)
    publish_event(service, approval, outcome)
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
    run_actions(service, approval, approval.process.actions(moment), moment)
    return approval


def outcome_action(outcome: str) -> str:
    """The log line of an approval's end, apart from the answers that led to it."""
    return f"process_{outcome}"


def recall(service: RecordService, approval_id: str, comment: str | None = None) -> Approval:
    """The submitter (or an admin) withdraws a pending approval."""
    before = instances.load(service.conn, approval_id)
    if service.user.id != before.submitted_by and not service.user.is_admin:
        raise Forbidden("only the submitter or an admin may recall an approval")
    approval = instances.claim(service.conn, approval_id)
    holders = instances.cancel_pending(service.conn, approval.id, service.now)
    approval = instances.save_state(
        service.conn, approval, status=RECALLED, finished_at=service.now
    )
    instances.log(
        service.conn,
        approval,
        RECALLED,
        at=service.now,
        by=service.user.id,
        step=approval.step,
        comment=comment,
    )
    publish_event(service, approval, RECALLED, comment=comment)
    notify(
        service.conn,
        holders,
        "approval.recalled",
        f"{approval.process.title}: recalled",
        f"{approval.entity} {approval.record_id}",
        entity=approval.entity,
        record_id=approval.record_id,
    )
    run_actions(service, approval, approval.process.actions("on_recall"), "on_recall")
    return approval
