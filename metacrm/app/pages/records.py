"""A record's page: its fields laid out by the entity's form layout, the stage path of each of
its pipelines, record actions as buttons, the approval panel, related lists and the history
timeline — and the posts made from it (move a stage, run an action, submit, delete)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Data, Page, Redirect, View, local_target
from metacrm.app.fields import Shown, editable, field_label, option_label, show
from metacrm.app.i18n import Locale
from metacrm.app.logic import holds, rule_values
from metacrm.app.messages import placed_error_text
from metacrm.app.pages.auth import app_runtime
from metacrm.app.pages.forms import lookup_matches
from metacrm.app.present import Column, Presenter, columns_for, expansions, title_of
from metacrm.metadata.actions import ACTION
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.pipelines import PipelineDef
from metacrm.platform.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Locked,
    MetacrmError,
    PreconditionFailed,
    Unprocessable,
)
from metacrm.platform.users import user_names
from metacrm.runtime import approvals
from metacrm.runtime.actions import list_actions
from metacrm.runtime.actions.running import run_action
from metacrm.runtime.approvals.transitions import APPROVED, REJECTED
from metacrm.runtime.form_layouts import layout_for
from metacrm.runtime.listing import ListQuery
from metacrm.runtime.records import RecordService

RELATED_LIMIT = 10
HISTORY_LIMIT = 50
INPUT_KEY = re.compile(r"\binput\.([a-z][a-z0-9_]*)")


@dataclass
class Item:
    """A field as the record page shows it."""

    name: str
    label: str
    shown: Shown
    editable: bool


def record_view(
    page: Page,
    entity_name: str,
    record_id: str,
    *,
    errors: list[FieldError] | None = None,
    status: int = 200,
    flash: str | None = None,
) -> View:
    catalog = page.ctx.catalog
    entity = catalog.entity(entity_name)
    records = page.records()
    permissions = records.permissions
    shown = permissions.view(entity, probe=False)
    lookups = [f.name for f in shown.fields if f.type == "lookup"]
    record = records.get(entity.name, record_id, expand=lookups)
    presenter = Presenter(page.conn, catalog, entity, page.locale)
    presenter.learn_users([record], list(shown.all_fields))
    values = rule_values(entity, record)
    layout = layout_for(records, entity.name)
    may_update = permissions.may(entity, "update")
    sections = []
    for part in layout["sections"]:
        if not holds(page.ctx, entity, part.get("visible_if"), values):
            continue
        items = []
        for name in part["fields"]:
            f = shown.field(name)
            if f is None or not holds(page.ctx, entity, f.doc.get("visible_if"), values):
                continue
            items.append(_item(presenter, f, record, may_update))
        if items:
            sections.append(
                {
                    "key": part["key"],
                    "label": page.locale.label(part.get("label"), part["key"]),
                    "columns": int(part.get("columns", 2)),
                    "collapsed": bool(part.get("collapsed")),
                    "fields": items,
                }
            )
    system = [
        _item(presenter, entity.field_map[n], record, False)
        for n in ("owner", "created_at", "updated_at")
    ]
    locale = page.locale
    return View(
        "record.html",
        {
            "title": title_of(entity, record, locale),
            "entity": entity,
            "record": record,
            "sections": sections,
            "system": system,
            "paths": _paths(page, entity, record, values),
            "actions": _actions(page, records, entity, record_id),
            "approvals": _approvals(page, records, entity, record_id),
            "related": _related(page, records, layout, record_id),
            "history": _history(page, records, entity, record_id),
            "may": {
                "update": may_update and _record_allows(records, entity, "update", record_id),
                "delete": permissions.may(entity, "delete")
                and _record_allows(records, entity, "delete", record_id),
            },
            "errors": [placed_error_text(e, entity, locale) for e in errors or []],
            "flash": flash or _flash(page),
        },
        status=status,
    )


def _record_allows(records: RecordService, entity: EntityDef, action: str, record_id: str) -> bool:
    try:
        records.require_on(entity, action, record_id, action)
    except MetacrmError:
        return False
    return True


def _flash(page: Page) -> str | None:
    _ = page.locale.gettext
    for key, text in (
        ("created", _("Created.")),
        ("saved", _("Saved.")),
        ("moved", _("Moved.")),
        ("submitted", _("Submitted for approval.")),
        ("answered", _("Your answer is recorded.")),
    ):
        if page.query.get(key):
            return text
    done = page.query.get("ran")
    if done:
        return page.locale.gettext("Done: %(action)s", action=done[:100])
    return None


def _item(presenter: Presenter, f: FieldDef, record: dict[str, Any], may_update: bool) -> Item:
    label = field_label(f, presenter.locale)
    return Item(
        f.name,
        label,
        presenter.cell(Column(f.name, f, label), record),
        may_update and editable(f) and f.name != "owner",
    )


def _paths(
    page: Page, entity: EntityDef, record: dict[str, Any], values: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each pipeline's stages, the current one with its guidance and what each next stage
    needs."""
    locale = page.locale
    found = []
    for pipeline in page.ctx.catalog.pipelines.values():
        if pipeline.entity != entity.name or entity.field(pipeline.field) is None:
            continue
        current = record.get(pipeline.field)
        stage = pipeline.stage(current)
        stages = []
        for s in pipeline.stages:
            allowed = current is None or current == s.key or pipeline.allows(current, s.key)
            stages.append(
                {
                    "key": s.key,
                    "label": locale.label(s.label, s.key),
                    "category": s.category,
                    "current": s.key == current,
                    "allowed": allowed and s.key != current,
                    "needs": _needs(page, entity, pipeline, s, values),
                }
            )
        found.append(
            {
                "name": pipeline.name,
                "field": pipeline.field,
                "label": locale.label(pipeline.doc.get("label"), pipeline.name),
                "stages": stages,
                "current": stage,
                "guidance": locale.label(stage.doc.get("guidance"), "") if stage else "",
                "version": record.get("version"),
            }
        )
    return found


def _needs(
    page: Page, entity: EntityDef, pipeline: PipelineDef, stage: Any, values: dict[str, Any]
) -> list[str]:
    """What entering the stage needs that the record doesn't have yet."""
    locale = page.locale
    missing = []
    for name in stage.required_fields:
        if values.get(name) in (None, "", []):
            f = entity.field(name)
            missing.append(field_label(f, locale) if f else name)
    reason = pipeline.lost_reason_field
    if stage.category == "lost" and reason and values.get(reason) in (None, ""):
        f = entity.field(reason)
        missing.append(field_label(f, locale) if f else reason)
    if stage.entry_condition and not holds(page.ctx, entity, stage.entry_condition, values):
        missing.append(stage.entry_condition)
    return missing


def _actions(
    page: Page, records: RecordService, entity: EntityDef, record_id: str
) -> list[dict[str, Any]]:
    locale = page.locale
    docs = {a.name: a.doc for a in page.ctx.catalog.of_kind_for(ACTION, entity.name)}
    found = []
    for action in list_actions(records, entity.name, record_id):
        schema = action.get("input_schema") or {}
        filled = filled_fields(entity, docs.get(action["name"], {}))
        found.append(
            {
                "name": action["name"],
                "label": locale.label(action.get("label"), action["name"]),
                "available": action.get("available", False),
                "reason": unavailable_reason(action, locale),
                "inputs": schema_inputs(schema, entity, filled, locale),
            }
        )
    return found


def unavailable_reason(action: dict[str, Any], locale: Locale) -> str:
    """Why an action can't run: the metadata's message in the user's language, else the
    runtime's reason said by its code (the runtime words its own reasons in English only)."""
    reason = action.get("reason") or {}
    if not reason or (isinstance(reason, dict) and reason.get(locale.language)):
        return locale.label(reason, "")
    _ = locale.gettext
    by_code = {
        "permission": _("You don't have the right to do this to this record."),
        "refused": _("This record can't be changed now."),
        "hook": _("This server can't run this action."),
    }
    return by_code.get(action.get("reason_code") or "", _("Not available for this record now."))


def filled_fields(entity: EntityDef, action: Mapping[str, Any]) -> dict[str, FieldDef]:
    """The field of the record each input of an action fills (its `set_fields` values that read
    exactly one input key): an input is labelled like the field it fills."""
    found: dict[str, FieldDef] = {}
    for step in action.get("steps") or ():
        if step.get("type") != "set_fields":
            continue
        for target, expression in (step.get("values") or {}).items():
            keys = set(INPUT_KEY.findall(str(expression)))
            f = entity.field(target)
            if len(keys) == 1 and f is not None:
                found.setdefault(keys.pop(), f)
    return found


def schema_inputs(
    schema: dict[str, Any], entity: EntityDef, filled: Mapping[str, FieldDef], locale: Locale
) -> list[dict[str, Any]]:
    """Inputs for an action's input schema (its top-level properties), labelled in the user's
    language by the fields they fill (an input's schema title is English only)."""
    required = set(schema.get("required") or ())
    inputs = []
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        f = filled.get(key) or entity.field(key)
        kind = "text"
        options: list[tuple[str, str]] = []
        if "enum" in prop:
            kind = "select"
            options = [
                (str(v), option_label(f, str(v), locale) if f is not None else str(v))
                for v in prop["enum"]
            ]
        elif prop.get("type") == "integer":
            kind = "integer"
        elif prop.get("type") == "number":
            kind = "number"
        elif prop.get("type") == "boolean":
            kind = "checkbox"
        elif prop.get("type") == "string" and (prop.get("maxLength") or 0) > 200:
            kind = "textarea"
        title = prop.get("title")
        if f is not None:
            label = field_label(f, locale)
        elif isinstance(title, str) and title:
            label = title
        else:
            label = key.replace("_", " ").capitalize()
        inputs.append(
            {
                "key": key,
                "label": label,
                "kind": kind,
                "options": options,
                "required": key in required,
                "min": prop.get("minimum"),
                "max": prop.get("maximum"),
            }
        )
    return inputs


def _approvals(
    page: Page, records: RecordService, entity: EntityDef, record_id: str
) -> dict[str, Any]:
    found = approvals.record_approvals(records, entity.name, record_id)
    people = user_names(
        page.conn,
        {t["approver"] for a in found for t in a["tasks"]} | {a["submitted_by"] for a in found},
    )
    me = page.ctx.user.id
    locale = page.locale
    items = []
    for a in found:
        mine = next(
            (t for t in a["tasks"] if t["approver"] == me and t["status"] == "pending"), None
        )
        steps = _step_labels(page, a["process"], locale)
        items.append(
            {
                **a,
                "label": locale.label(a.get("process_label"), a["process"]),
                "status_label": status_label(a["status"], locale),
                "mine": mine,
                "tasks": [
                    {
                        **t,
                        "approver_name": people.get(t["approver"] or "", ""),
                        "step_label": steps.get(t.get("step_name") or "", t.get("step_name")),
                        "status_label": status_label(t["status"], locale),
                    }
                    for t in a["tasks"]
                ],
                "submitter": people.get(a["submitted_by"], ""),
            }
        )
    processes = [
        {"name": p.name, "label": page.locale.label(p.doc.get("label"), p.name)}
        for p in page.ctx.catalog.approval_processes.values()
        if p.entity == entity.name and p.doc.get("trigger", "manual") == "manual"
    ]
    pending = any(a["status"] == "pending" for a in found)
    return {"found": items, "processes": [] if pending else processes}


def status_label(status: str, locale: Locale) -> str:
    """An approval's (or an approver's task's) status in the user's language."""
    _ = locale.gettext
    labels = {
        "pending": _("Pending"),
        "approved": _("Approved"),
        "rejected": _("Rejected"),
        "recalled": _("Recalled"),
        "reassigned": _("Reassigned"),
        "cancelled": _("Cancelled"),
    }
    return labels.get(status, status)


def _step_labels(page: Page, process_name: str, locale: Locale) -> dict[str, str]:
    """The labels of an approval process's steps, by step name."""
    process = page.ctx.catalog.approval_processes.get(process_name)
    steps = process.doc.get("steps", ()) if process is not None else ()
    return {s["name"]: locale.label(s.get("label"), s["name"]) for s in steps if "name" in s}


def change_label(action: str, locale: Locale) -> str:
    """What a history entry did to the record, in the user's language."""
    labels = {
        "create": locale.pgettext("history", "Created"),
        "update": locale.pgettext("history", "Changed"),
        "delete": locale.pgettext("history", "Deleted"),
        "restore": locale.pgettext("history", "Restored"),
    }
    return labels.get(action, action)


def _related(
    page: Page, records: RecordService, layout: dict[str, Any], record_id: str
) -> list[dict[str, Any]]:
    catalog = page.ctx.catalog
    found = []
    for item in layout.get("related_lists") or ():
        other = catalog.find(item["entity"])
        if other is None:
            continue
        permissions = records.permissions
        shown = permissions.view(other, probe=False)
        keys = item.get("columns") or ([other.title_field] if other.title_field else ["id"])
        columns = columns_for(catalog, other, shown, keys, page.locale)
        sort = item.get("sort") or "-created_at"
        from metacrm.runtime.api.params import parse_sort

        heads = list(
            dict.fromkeys(
                [c.key for c in columns] + ([other.title_field] if other.title_field else [])
            )
        )
        try:
            result = records.list(
                other.name,
                ListQuery(
                    filter=f"{item['lookup']} == {json.dumps(record_id)}",
                    sort=parse_sort(sort),
                    limit=int(item.get("limit") or RELATED_LIMIT),
                    fields=tuple(heads),
                    expand=tuple(expansions(columns)),
                    count=True,
                ),
            )
        except MetacrmError:
            continue
        presenter = Presenter(page.conn, catalog, other, page.locale)
        found.append(
            {
                "entity": other,
                "label": page.locale.label(item.get("label"), "")
                or page.locale.label(other.plural_label, other.name),
                "columns": columns,
                "rows": presenter.rows(result["data"], columns),
                "count": result.get("count", 0),
                "new_link": f"/app/{other.name}/new?{item['lookup']}={record_id}"
                if permissions.may(other, "create")
                else None,
                "all_link": f"/app/{other.name}?filter="
                + _quote(f"{item['lookup']} == {json.dumps(record_id)}"),
            }
        )
    return found


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _history(
    page: Page, records: RecordService, entity: EntityDef, record_id: str
) -> list[dict[str, Any]]:
    entries = records.history(entity.name, record_id)[:HISTORY_LIMIT]
    people = user_names(page.conn, {e["changed_by"] for e in entries if e.get("changed_by")})
    owners = {
        v
        for e in entries
        for name, change in e["changes"].items()
        if name == "owner" or (entity.field(name) and entity.field_map[name].type == "user")
        for v in (change.get("old"), change.get("new"))
        if isinstance(v, str)
    }
    people.update(user_names(page.conn, owners - set(people)))
    titles = _history_titles(page, records, entity, entries)
    locale = page.locale
    found = []
    for entry in entries:
        changes = []
        for name, change in entry["changes"].items():
            f = entity.field(name)
            if f is None or name in ("version", "updated_at", "updated_by"):
                continue
            changes.append(
                {
                    "label": field_label(f, locale),
                    "old": show(f, change.get("old"), locale, users=people, titles=titles).text,
                    "new": show(f, change.get("new"), locale, users=people, titles=titles).text,
                }
            )
        found.append(
            {
                "action": entry["action"],
                "action_label": change_label(entry["action"], locale),
                "when": locale.datetime_text(_moment(entry["changed_at"]), "medium"),
                "iso": entry["changed_at"],
                "by": people.get(entry.get("changed_by") or "", locale.gettext("the system")),
                "changes": changes,
            }
        )
    return found


def _history_titles(
    page: Page, records: RecordService, entity: EntityDef, entries: list[dict[str, Any]]
) -> dict[str, str]:
    """Titles of the records the history's lookup values point to, those the caller may read."""
    wanted: dict[str, set[str]] = {}
    for entry in entries:
        for name, change in entry["changes"].items():
            f = entity.field(name)
            if f is None or f.type != "lookup":
                continue
            for value in (change.get("old"), change.get("new")):
                if isinstance(value, str):
                    wanted.setdefault(f.doc.get("target", ""), set()).add(value)
    titles: dict[str, str] = {}
    for target_name, ids in wanted.items():
        target = page.ctx.catalog.find(target_name)
        if target is None or not target.title_field:
            continue
        try:
            found = records.list(
                target.name,
                ListQuery(
                    filter=f"id in {json.dumps(sorted(ids))}",
                    limit=len(ids),
                    fields=("id", target.title_field),
                ),
            )
        except MetacrmError:
            continue
        titles.update({r["id"]: title_of(target, r, page.locale) for r in found["data"]})
    return titles


def _moment(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- posts from the record page -------------------------------------------------------------


def move_stage(page: Page, entity_name: str, record_id: str) -> Redirect | View | Data:
    """Move the record to a stage (the stage path's buttons, the kanban board's drag)."""
    assert page.form is not None
    entity = page.ctx.catalog.entity(entity_name)
    field = str(page.form.get("field") or "")
    stage = str(page.form.get("stage") or "")
    version = str(page.form.get("_version") or "")
    pipeline = next(
        (
            p
            for p in page.ctx.catalog.pipelines.values()
            if p.entity == entity.name and p.field == field
        ),
        None,
    )
    if pipeline is None or pipeline.stage(stage) is None:
        raise BadRequest(page.locale.gettext("No such stage."))
    records = page.records()
    try:
        with page.conn.begin_nested():
            records.update(
                entity.name,
                record_id,
                {field: stage},
                if_match=int(version) if version.isdigit() else None,
            )
    except (Unprocessable, Locked, PreconditionFailed, Conflict) as refused:
        problems = refused.errors or [FieldError("", refused.type_slug, refused.detail)]
        if isinstance(refused, PreconditionFailed):
            problems = [
                FieldError(
                    "",
                    "stale",
                    page.locale.gettext("Someone else changed this record; look again and retry."),
                )
            ]
        messages = [placed_error_text(e, entity, page.locale) for e in problems]
        if page.wants_fragment:
            return Data({"ok": False, "errors": messages}, status=refused.status)
        return record_view(page, entity.name, record_id, errors=problems, status=refused.status)
    if page.wants_fragment:
        moved = records.get(entity.name, record_id)
        return Data({"ok": True, "version": moved["version"]})
    back = local_target(str(page.form.get("back") or ""), f"/app/{entity.name}/{record_id}")
    return Redirect(back + ("&" if "?" in back else "?") + "moved=1")


def run(page: Page, entity_name: str, record_id: str, name: str) -> Redirect | View:
    assert page.form is not None
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    body = _action_input(page, records, entity, record_id, name)
    try:
        with page.conn.begin_nested():
            run_action(records, entity.name, record_id, name, body)
    except MetacrmError as refused:
        if refused.status >= 500 or refused.status == 404:
            raise
        problems = refused.errors or [FieldError("", refused.type_slug, refused.detail)]
        return record_view(page, entity.name, record_id, errors=problems, status=refused.status)
    label = next(
        (a["label"] for a in _actions(page, records, entity, record_id) if a["name"] == name), name
    )
    return Redirect(f"/app/{entity.name}/{record_id}?ran={_quote(label)}")


def _action_input(
    page: Page, records: RecordService, entity: EntityDef, record_id: str, name: str
) -> dict[str, Any]:
    """The action's input from its form, typed by its input schema."""
    assert page.form is not None
    schema = next(
        (
            a.get("input_schema") or {}
            for a in list_actions(records, entity.name, record_id)
            if a["name"] == name
        ),
        {},
    )
    body: dict[str, Any] = {}
    for key, prop in (schema.get("properties") or {}).items():
        raw = page.form.get(f"input.{key}")
        if raw is None or str(raw).strip() == "":
            continue
        text = str(raw).strip()
        kind = prop.get("type") if isinstance(prop, dict) else None
        if kind == "integer" and text.lstrip("-").isdigit():
            body[key] = int(text)
        elif kind == "number":
            try:
                body[key] = float(text)
            except ValueError:
                body[key] = text
        elif kind == "boolean":
            body[key] = text == "true"
        else:
            body[key] = text
    return body


def submit_for_approval(page: Page, entity_name: str, record_id: str) -> Redirect | View:
    assert page.form is not None
    process = str(page.form.get("process") or "")
    comment = str(page.form.get("comment") or "").strip() or None
    try:
        with page.conn.begin_nested():
            approvals.submit(page.records(), entity_name, record_id, process, comment=comment)
    except MetacrmError as refused:
        if refused.status >= 500:
            raise
        problems = refused.errors or [FieldError("", refused.type_slug, refused.detail)]
        return record_view(page, entity_name, record_id, errors=problems, status=refused.status)
    return Redirect(f"/app/{entity_name}/{record_id}?submitted=1")


def answer(page: Page, approval_id: str, verdict: str) -> Redirect | View:
    assert page.form is not None
    comment = str(page.form.get("comment") or "").strip() or None
    records = page.records()
    approval = approvals.visible(records, approval_id)
    back = local_target(
        str(page.form.get("back") or ""), f"/app/{approval.entity}/{approval.record_id}"
    )
    try:
        with page.conn.begin_nested():
            approvals.decide(records, approval_id, verdict, comment)
    except MetacrmError as refused:
        if refused.status >= 500:
            raise
        problems = refused.errors or [FieldError("", refused.type_slug, refused.detail)]
        return record_view(
            page, approval.entity, approval.record_id, errors=problems, status=refused.status
        )
    return Redirect(back + ("&" if "?" in back else "?") + "answered=1")


def delete(page: Page, entity_name: str, record_id: str) -> Redirect:
    page.records().delete(entity_name, record_id)
    return Redirect(f"/app/{entity_name}?done=1&what=deleted")


def search(page: Page, entity_name: str) -> Data:
    """Suggestions for a lookup input: readable records whose title contains the text."""
    entity = page.ctx.catalog.entity(entity_name)
    text = page.query.get("q", "").strip()[:100]
    if not text:
        return Data({"data": []})
    records = page.records()
    found = lookup_matches(records, entity, text, limit=10, exact=False)
    return Data(
        {"data": [{"id": r["id"], "title": title_of(entity, r, page.locale)} for r in found]}
    )


# ---- routes ---------------------------------------------------------------------------------


async def record_page(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(request, lambda p: record_view(p, name, record_id))


async def stage_submit(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda p: move_stage(p, name, record_id), write=True
    )


async def action_submit(request: Request) -> Response:
    params = request.path_params
    return await app_runtime(request).page(
        request, lambda p: run(p, params["entity"], params["id"], params["action"]), write=True
    )


async def approval_submit(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda p: submit_for_approval(p, name, record_id), write=True
    )


async def approve(request: Request) -> Response:
    approval_id = request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda p: answer(p, approval_id, APPROVED), write=True
    )


async def reject(request: Request) -> Response:
    approval_id = request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda p: answer(p, approval_id, REJECTED), write=True
    )


async def delete_submit(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda p: delete(p, name, record_id), write=True
    )


async def lookup_search(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda p: search(p, name))
