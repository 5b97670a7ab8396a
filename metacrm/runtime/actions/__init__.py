"""Record actions at run time: which actions the caller may run on a record and why not
(availability.py), their input (inputs.py), their steps (steps.py) and running one
(running.py). The documents are metadata (metacrm/metadata/actions.py)."""

from __future__ import annotations

from typing import Any

from metacrm.metadata.actions import ActionDesigner, References
from metacrm.runtime.actions.availability import actions_of, granted, judge
from metacrm.runtime.actions.running import EXECUTED, run_action
from metacrm.runtime.context import Records, RequestContext
from metacrm.runtime.rule_checks import expression_checker

__all__ = ["EXECUTED", "action_designer", "list_actions", "run_action"]


def action_designer(ctx: RequestContext) -> ActionDesigner:
    """The designer of actions over the context's metadata, knowing the registered hooks."""
    catalog = ctx.catalog
    refs = References(
        catalog.entities,
        catalog.pipelines,
        catalog.approval_processes,
        tuple(ctx.host.registry.actions),
        expression_checker(catalog),
    )
    return ActionDesigner(ctx.conn, ctx.user.id, refs)


def list_actions(records: Records, entity_name: str, record_id: str) -> list[dict[str, Any]]:
    """The entity's actions the caller's roles let them run, each with whether it is
    available on this record (which they must be able to read) and why not."""
    entity = records.ctx.catalog.entity(entity_name)
    records.read_row(entity, record_id)
    actions = granted(records, entity, actions_of(records.ctx, entity))
    return [found.as_json() for found in judge(records, entity, record_id, actions)]
