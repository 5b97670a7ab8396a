"""Every background task and periodic job of the runtime. Importing this module registers them
with the task platform; every process that runs or enqueues tasks imports it first."""

from __future__ import annotations

from metacrm.platform.db import writing
from metacrm.platform.tasks import TaskContext, periodic
from metacrm.runtime import event_dispatch, notification_email, webhooks
from metacrm.runtime.approvals import run_escalations

ESCALATION_TASK = "approvals.escalate"

__all__ = ["event_dispatch", "notification_email", "webhooks"]


@periodic(ESCALATION_TASK, every=60.0)
def escalate(context: TaskContext) -> None:
    """Remind approvers whose step is past its SLA; hand overdue steps to their managers."""
    with writing(context.engine) as conn:
        run_escalations(conn, context.clock())
