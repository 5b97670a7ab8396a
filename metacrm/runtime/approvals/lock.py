"""The record lock while an approval is pending: only admins (and, if the process says so, the
current step's pending approvers) may change or delete the record. The approval's own actions
write elevated, as admins, so they pass."""

from __future__ import annotations

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import Locked
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.instances import Approval
from metacrm.runtime.approvals.transitions import PENDING
from metacrm.runtime.context import Records


def check_lock(records: Records, entity: EntityDef, record_id: str) -> None:
    """Raise Locked (423) when a pending approval locks the record against this caller."""
    if records.ctx.user.is_admin:
        return
    for approval in instances.for_record(records.ctx.conn, entity.name, record_id, status=PENDING):
        if not _may_edit(records, approval):
            raise Locked(
                f"this {entity.name} is locked while it awaits approval in "
                f"{approval.process.title!r} ({approval.process.name})",
                extra={"approval": approval.id, "process": approval.process.name},
            )


def _may_edit(records: Records, approval: Approval) -> bool:
    if not approval.process.approver_may_edit:
        return False
    current = instances.tasks(records.ctx.conn, approval.id, step=approval.step)
    return any(t.approver_id == records.ctx.user.id and t.status == PENDING for t in current)
