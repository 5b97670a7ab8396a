"""What a process does at its moments (submit, step approved or rejected, final approval or
rejection, recall): set a field, move a stage, notify people.

Record changes go through the record service elevated: validated, audited and published like
any write, but past the caller's permissions and the approval's own lock. A change the record
refuses (its validation rules) refuses the answer that caused it, so nothing is left half-done.
A record deleted in the meantime is left alone and the skipped action is logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metacrm.metadata.model import EntityDef
from metacrm.metadata.values import to_json
from metacrm.platform.errors import NotFound
from metacrm.runtime.approvals import instances
from metacrm.runtime.approvals.approvers import role_holders
from metacrm.runtime.approvals.conditions import stored_record
from metacrm.runtime.approvals.instances import Approval
from metacrm.runtime.context import Records
from metacrm.runtime.notifications import notify

NOTICE = "approval.notice"

Action = Mapping[str, Any]


def run_actions(
    records: Records, approval: Approval, actions: Sequence[Action], moment: str
) -> None:
    if not actions:
        return
    entity = records.ctx.catalog.entity(approval.entity)
    for action in actions:
        _RUNNERS[action["type"]](records, entity, approval, action, moment)


def _write(
    records: Records,
    entity: EntityDef,
    approval: Approval,
    moment: str,
    values: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    try:
        record = stored_record(records.ctx, entity, approval.record_id)
    except NotFound:
        instances.log(
            records.ctx.conn,
            approval,
            "action_skipped",
            at=records.ctx.now,
            by=records.ctx.user.id,
            moment=moment,
            reason="the record is deleted",
        )
        return
    records.elevated().update(entity.name, approval.record_id, values(record))


def _set_field(
    records: Records, entity: EntityDef, approval: Approval, action: Action, moment: str
) -> None:
    def values(record: dict[str, Any]) -> dict[str, Any]:
        value = records.ctx.rules().value(entity, action["expression"], record)
        return {action["field"]: to_json(value)}

    _write(records, entity, approval, moment, values)


def _move_stage(
    records: Records, entity: EntityDef, approval: Approval, action: Action, moment: str
) -> None:
    _write(records, entity, approval, moment, lambda _record: {action["field"]: action["stage"]})


def _notify(
    records: Records, entity: EntityDef, approval: Approval, action: Action, _moment: str
) -> None:
    recipients = recipients_of(records, entity, approval, action["to"])
    message = action["message"]
    title = message.get("en") or next(iter(message.values()))
    body = f"{approval.process.title}: {entity.name} {approval.record_id}"
    notify(
        records.ctx.conn,
        recipients,
        NOTICE,
        title,
        body,
        entity=entity.name,
        record_id=approval.record_id,
    )


def recipients_of(
    records: Records, entity: EntityDef, approval: Approval, to: Sequence[Any]
) -> list[str]:
    found: list[str] = []
    for item in to:
        if item == "submitter":
            found.append(approval.submitted_by)
        elif item == "owner":
            try:
                owner = stored_record(records.ctx, entity, approval.record_id).get("owner")
            except NotFound:
                owner = None
            found.extend([owner] if owner else [])
        elif item == "approvers":
            found.extend(t.approver_id for t in instances.tasks(records.ctx.conn, approval.id))
        elif "user" in item:
            found.append(item["user"])
        else:
            found.extend(role_holders(records.ctx.conn, item["role"]))
    return list(dict.fromkeys(found))


_RUNNERS = {"set_field": _set_field, "move_stage": _move_stage, "notify": _notify}
