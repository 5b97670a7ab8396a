"""Approval workflows at run time: submissions, steps, decisions, locks, delegation and
escalation. The record service reaches this package through its write hook (hook.py: the lock and
auto-submission); the API, stage pipelines and the periodic job call the functions below."""

from __future__ import annotations

from typing import Any

from metacrm.runtime.approvals.delegations import (
    create_delegation,
    delete_delegation,
    list_delegations,
)
from metacrm.runtime.approvals.engine import decide, recall
from metacrm.runtime.approvals.escalation import run_escalations
from metacrm.runtime.approvals.handover import reassign
from metacrm.runtime.approvals.hook import ApprovalHook
from metacrm.runtime.approvals.submission import submit as submit_approval
from metacrm.runtime.approvals.views import approval_json, inbox, record_approvals, visible
from metacrm.runtime.context import Records

__all__ = [
    "ApprovalHook",
    "approval_json",
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
    records: Records,
    entity_name: str,
    record_id: str,
    process_name: str,
    *,
    comment: str | None = None,
) -> dict[str, Any]:
    """Submit a record to an approval process as the caller; returns the approval as
    JSON (with its tasks and log)."""
    approval = submit_approval(records, entity_name, record_id, process_name, comment=comment)
    return approval_json(records, approval)
