"""Stage pipelines at run time: gates, transitions, stage history and entry actions.

(Skeleton: being written.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metacrm.metadata.model import EntityDef

if TYPE_CHECKING:
    from metacrm.runtime.records import RecordService


def before_write(
    service: RecordService,
    entity: EntityDef,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> dict[str, Any]:
    """Check a stage move (transition, gate, required fields, lost reason); returns the values
    the entered stage's actions set. Raises Unprocessable naming every unmet condition."""
    return {}


def after_write(
    service: RecordService,
    entity: EntityDef,
    record_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """Record stage exits and entries, publish `stage.changed`, run follow-up actions."""
