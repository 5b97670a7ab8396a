"""The record lock while an approval is pending: only admins (and, if the process says so, the
current step's pending approvers) may change or delete the record. The approval's own actions
write elevated, as admins, so they pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import Locked
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.instances import Approval
from metacrm.runtime.approvals.transitions import PENDING

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService


def check_lock(service: RecordService, entity: EntityDef, record_id: str) -> None:
    """Raise Locked (423) when a pending approval locks the record against this caller."""
    if service.user.is_admin:
        return
    for approval in instances.for_record(service.conn, entity.name, record_id, status=PENDING):
        if not _may_edit(service, approval):
            raise Locked(
                f"this {entity.name} is locked while it awaits approval in "
                f"{approval.process.title!r} ({approval.process.name})",
                extra={"approval": approval.id, "process": approval.process.name},
            )


def _may_edit(service: RecordService, approval: Approval) -> bool:
    if not approval.process.approver_may_edit:
        return False
    current = instances.tasks(service.conn, approval.id, step=approval.step)
    return any(t.approver_id == service.user.id and t.status == PENDING for t in current)
