"""The runtime's periodic approval job: reminders past a step's SLA and escalations."""

from __future__ import annotations

from metacrm.runtime.approvals import run_escalations
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services

ESCALATION_TASK = "approvals.escalate"
ESCALATION_EVERY_SECONDS = 60.0


def register(registry: RuntimeRegistry) -> None:
    registry.task(ESCALATION_TASK, escalate, every=ESCALATION_EVERY_SECONDS)


def escalate(services: Services) -> None:
    """Remind approvers whose step is past its SLA; hand overdue steps to their managers."""
    with services.writing() as conn:
        run_escalations(services.system_context(conn))
