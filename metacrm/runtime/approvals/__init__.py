"""Approval workflows at run time: submissions, steps, decisions, locks, delegation and
escalation. The record service reaches this package through `runtime.processes` (the lock and
auto-submission); the API, stage pipelines and the periodic job call the functions below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metacrm.runtime.approvals.auto import after_write
from metacrm.runtime.approvals.delegations import (
    create_delegation,
    delete_delegation,
    list_delegations,
)
from metacrm.runtime.approvals.engine import decide, recall
from metacrm.runtime.approvals.escalation import run_escalations
from metacrm.runtime.approvals.handover import reassign
from metacrm.runtime.approvals.lock import check_lock
from metacrm.runtime.approvals.submission import submit as submit_approval
from metacrm.runtime.approvals.views import approval_json, inbox, record_approvals, visible

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService

__all__ = [
    "after_write",
    "approval_json",
    "check_lock",
    "create_delegation",
    "decide",
    "delete_delegation",
    "inbox",
    "list_delegations",
    "reassign",
    "recall",
    "record_approvals",
    "run_escalations",
    "submit",
    "visible",
]


def submit(
    service: RecordService,
    entity_name: str,
    record_id: str,
    process_name: str,
    *,
    comment: str | None = None,
) -> dict[str, Any]:
    """Submit a record to an approval process as the service's user; returns the approval as
    JSON (with its tasks and log)."""
    approval = submit_approval(service, entity_name, record_id, process_name, comment=comment)
    return approval_json(service, approval)
