"""Approval workflows at run time: submissions, steps, decisions, locks and escalation.

(Skeleton: being written.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metacrm.metadata.model import EntityDef

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService


def check_lock(service: RecordService, entity: EntityDef, record_id: str) -> None:
    """Raise Locked (423) when a pending approval locks the record against this caller."""


def after_write(
    service: RecordService,
    entity: EntityDef,
    record_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """Submit the record to every `auto` process whose condition the write made true."""


def submit(
    service: RecordService,
    entity_name: str,
    record_id: str,
    process_name: str,
    *,
    comment: str | None = None,
) -> dict[str, Any]:
    """Submit a record to an approval process as the service's user; returns the approval."""
    raise NotImplementedError("approval submission is being written")
