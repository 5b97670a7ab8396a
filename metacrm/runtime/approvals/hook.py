"""The write hook of approval workflows: a pending approval locks its record (before a change),
and a write that makes an `auto` process's condition true submits the record (after it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.runtime.approvals.auto import after_write
from metacrm.runtime.approvals.lock import check_lock
from metacrm.runtime.context import NoHook, Records


class ApprovalHook(NoHook):
    def before_change(self, records: Records, entity: EntityDef, record_id: str) -> None:
        check_lock(records, entity, record_id)

    def after_write(
        self,
        records: Records,
        entity: EntityDef,
        record_id: str,
        action: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        after_write(records, entity, record_id, before, after)
