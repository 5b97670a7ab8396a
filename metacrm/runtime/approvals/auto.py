"""Auto-triggered processes: a write that makes a process's `auto_condition` true (true after,
not true before; a create counts) submits the record as the writer.

A record that qualifies but whose steps would have no approver refuses the write (422): saving
a record that demands approval which nobody could give would leave it silently unapproved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.runtime.approvals.conditions import condition_holds
from metacrm.runtime.approvals.submission import auto_submit
from metacrm.runtime.context import Records


def after_write(
    records: Records,
    entity: EntityDef,
    record_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """Submit the record to every `auto` process whose condition the write made true."""
    for process in records.ctx.catalog.approval_processes_of(entity.name):
        condition = process.auto_condition
        if process.trigger != "auto" or not condition:
            continue
        if not condition_holds(records.ctx, entity, condition, after, before):
            continue
        if before is not None and condition_holds(records.ctx, entity, condition, before):
            continue
        auto_submit(records, entity, process, record_id)
