"""Create and edit forms generated from an entity's metadata and its form layout: every field
type with a fitting input, errors next to their fields, nothing typed lost on a failed save, a
stale edit explained (what the other person changed) and re-appliable, and the live logic
(visible_if, required_if, read_only_if, default_expr, validation rules) as the user types."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Data, Page, Redirect, View
from metacrm.app.fields import editable, field_label, input_value, option_label, parse_form
from metacrm.app.i18n import Locale
from metacrm.app.logic import holds, rule_values
from metacrm.app.messages import error_text, placed_error_text
from metacrm.app.pages.auth import app_runtime
from metacrm.app.present import title_of
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.metadata.values import ValueProblem, coerce
from metacrm.platform.errors import FieldError, MetacrmError, PreconditionFailed, Unprocessable
from metacrm.platform.users import active_users, user_names
from metacrm.runtime.form_layouts import layout_for
from metacrm.runtime.record_rules import rule_errors
from metacrm.runtime.records import RecordService

VERSION_FIELD = "_version"
FIELDS_FIELD = "_fields"
LOGIC_OPTIONS = ("visible_if", "required_if", "read_only_if")


@dataclass
class Input:
    """One field of a form: what the template needs to draw its input."""

    field: FieldDef
    label: str
    value: Any
    kind: str
    required: bool
    error: str | None = None
    options: list[tuple[str, str]] = default(default_factory=list)
    display: str = ""
    logic: dict[str, str] = default(default_factory=dict)
    help: str = ""
    hidden: bool = False
    locked: bool = False


@dataclass
class Section:
    key: str
    label: str
    columns: int
    inputs: list[Input]
    visible_if: str | None = None
    hidden: bool = False


def _kind(f: FieldDef) -> str:
    """Which input draws the field."""
    return {
        "textarea": "textarea",
        "integer": "number",
        "decimal": "decimal",
        "boolean": "checkbox",
        "date": "date",
        "datetime": "datetime",
        "email": "email",
        "phone": "tel",
        "url": "url",
        "picklist": "select",
        "multipicklist": "multi",
        "lookup": "lookup",
        "user": "user",
    }.get(f.type, "text")


def _writable_fields(records: RecordService, entity: EntityDef, action: str) -> list[FieldDef]:
    """The fields a form offers for this action: editable ones the caller may write."""
    permissions = records.permissions
    shown = permissions.view(entity, probe=False)
    found = []
    for f in entity.all_fields:
        if not editable(f) or shown.field(f.name) is None:
            continue
        if f.name == "owner" and not (action == "create" or permissions.may(entity, "transfer")):
            continue
        if not permissions.writable(entity, action, f.name):
            continue
        found.append(f)
    return found


def build_sections(
    page: Page,
    entity: EntityDef,
    action: str,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    only: list[str] | None = None,
) -> list[Section]:
    """The form's sections in the layout's order; fields the layout doesn't place come last."""
    records = page.records()
    locale = page.locale
    offered = {f.name: f for f in _writable_fields(records, entity, action)}
    layout = layout_for(records, entity.name)
    placed: set[str] = set()
    sections = []
    users: list[tuple[str, str]] | None = None
    lookup_titles = _lookup_titles(records, entity, values, locale)
    typed = rule_values(entity, dict(values))
    for part in layout["sections"]:
        names = [n for n in part["fields"] if n in offered and (only is None or n in only)]
        placed.update(part["fields"])
        if not names:
            continue
        inputs = []
        for name in names:
            if offered[name].type == "user" or name == "owner":
                users = users if users is not None else active_users(page.conn)
            inputs.append(_input(offered[name], values, errors, locale, users or [], lookup_titles))
        for item in inputs:
            item.hidden = not holds(page.ctx, entity, item.logic.get("visible_if"), typed)
        sections.append(
            Section(
                part["key"],
                locale.label(part.get("label"), part["key"]),
                int(part.get("columns", 2)),
                inputs,
                part.get("visible_if"),
                not holds(page.ctx, entity, part.get("visible_if"), typed),
            )
        )
    rest = [
        f for name, f in offered.items() if name not in placed and (only is None or name in only)
    ]
    if rest:
        if any(f.type == "user" or f.name == "owner" for f in rest):
            users = users if users is not None else active_users(page.conn)
        sections.append(
            Section(
                "_more",
                locale.gettext("More") if sections else locale.gettext("Details"),
                2,
                [_input(f, values, errors, locale, users or [], lookup_titles) for f in rest],
            )
        )
    return sections


def _lookup_titles(
    records: RecordService, entity: EntityDef, values: Mapping[str, Any], locale: Locale
) -> dict[str, str]:
    """Titles of the records the form's lookups point to (those the caller may read)."""
    titles: dict[str, str] = {}
    for f in entity.fields:
        value = values.get(f.name)
        if f.type != "lookup" or not isinstance(value, str) or not value:
            continue
        target = records.ctx.catalog.find(f.doc.get("target", ""))
        if target is None or not records.permissions.may(target, "read"):
            continue
        try:
            record = records.get(target.name, value)
        except MetacrmError:
            continue
        titles[value] = title_of(target, record, locale)
    return titles


def _input(
    f: FieldDef,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    locale: Locale,
    users: list[tuple[str, str]],
    titles: Mapping[str, str],
) -> Input:
    kind = _kind(f)
    options: list[tuple[str, str]] = []
    if f.type in ("picklist", "multipicklist"):
        options = [(v, option_label(f, v, locale)) for v in f.options]
    elif f.type == "user" or f.name == "owner":
        kind = "user"
        options = users
    value = input_value(f, values.get(f.name), locale)
    display = titles.get(str(value), "") if f.type == "lookup" else ""
    return Input(
        field=f,
        label=field_label(f, locale),
        value=value,
        kind=kind,
        required=f.required,
        error=errors.get(f.name),
        options=options,
        display=display,
        logic={k: f.doc[k] for k in LOGIC_OPTIONS if k in f.doc},
        help=locale.label(f.doc.get("help"), ""),
    )


def resolve_lookups(
    records: RecordService,
    entity: EntityDef,
    fields: list[FieldDef],
    form: Any,
    data: dict[str, Any],
) -> list[FieldError]:
    """Lookups typed as text (a form without script, or a title typed over): the record of the
    target whose title is exactly that, when there is one; a clear error when there are none or
    several. The page's script sets the id itself when the user picks from the suggestions."""
    errors = []
    for f in fields:
        if f.type != "lookup" or f"{f.name}__title" not in form:
            continue
        typed = str(form.get(f"{f.name}__title") or "").strip()
        shown = str(form.get(f"{f.name}__shown") or "").strip()
        if typed == shown and data.get(f.name):
            continue
        if not typed:
            data[f.name] = None
            continue
        target = records.ctx.catalog.find(f.doc.get("target", ""))
        if target is None or not target.title_field:
            continue
        found = lookup_matches(records, target, typed, limit=3, exact=True)
        if len(found) == 1:
            data[f.name] = found[0]["id"]
        else:
            data.pop(f.name, None)
            errors.append(FieldError(f.name, "lookup_none" if not found else "lookup_many", typed))
    return errors


def lookup_matches(
    records: RecordService, target: EntityDef, text: str, *, limit: int, exact: bool
) -> list[dict[str, Any]]:
    """Records of `target` the caller may read whose title is (or contains) `text`."""
    from metacrm.runtime.listing import ListQuery

    title = target.title_field
    if not title or records.permissions.view(target, probe=True).field(title) is None:
        return []
    literal = json.dumps(text, ensure_ascii=False)
    condition = f"lower({title}) == lower({literal})" if exact else f"{title} contains {literal}"
    try:
        page = records.list(
            target.name, ListQuery(filter=condition, limit=limit, fields=("id", title))
        )
    except MetacrmError:
        return []
    return list(page["data"])


def _form_view(
    page: Page,
    entity: EntityDef,
    *,
    record: dict[str, Any] | None,
    values: Mapping[str, Any],
    errors: list[FieldError],
    status: int = 200,
    conflict: list[dict[str, Any]] | None = None,
    only: list[str] | None = None,
    version: int | None = None,
) -> View:
    locale = page.locale
    first: dict[str, FieldError] = {}
    general = []
    for e in errors:
        if e.field and entity.field(e.field) is not None:
            first.setdefault(e.field, e)
        else:
            general.append(error_text(e, entity, locale))
    by_field = {name: error_text(e, entity, locale) for name, e in first.items()}
    action = "update" if record else "create"
    sections = build_sections(page, entity, action, values, by_field, only)
    placed = {i.field.name for s in sections for i in s.inputs}
    # A field the form doesn't show (the caller may not write it): its error goes to the top.
    general += [placed_error_text(e, entity, locale) for n, e in first.items() if n not in placed]
    title = (
        locale.gettext("Edit %(title)s", title=title_of(entity, record, locale))
        if record
        else locale.gettext("New %(entity)s", entity=locale.label(entity.label, entity.name))
    )
    return View(
        "form.html",
        {
            "title": title,
            "entity": entity,
            "record": record,
            "sections": sections,
            "general_errors": general,
            "field_errors": bool(by_field),
            "version": version if version is not None else (record or {}).get("version"),
            "conflict": conflict,
            "only": only,
            "action_url": f"/app/{entity.name}/{record['id']}/edit"
            if record
            else f"/app/{entity.name}/new",
            "cancel_url": f"/app/{entity.name}/{record['id']}" if record else f"/app/{entity.name}",
        },
        status=status,
    )


def new_form(page: Page, entity_name: str) -> View:
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    records.permissions.require(entity, "create")
    values: dict[str, Any] = {}
    for f in entity.fields:
        if f.has_default:
            values[f.name] = f.default
    values.update(_default_expressions(page, entity, values))
    # A "new" link from a related list names the parent: `?customer=<id>`.
    for f in entity.fields:
        given = page.query.get(f.name)
        if f.type == "lookup" and given:
            values[f.name] = given
    return _form_view(page, entity, record=None, values=values, errors=[])


def _default_expressions(page: Page, entity: EntityDef, values: dict[str, Any]) -> dict[str, Any]:
    rules = page.ctx.rules()
    found = {}
    for f in entity.fields:
        text = f.doc.get("default_expr")
        if not text:
            continue
        try:
            found[f.name] = _json_value(f, rules.value(entity, text, values))
        except (MetacrmError, ValueProblem, TypeError, ValueError):
            continue
    return found


def _json_value(f: FieldDef, value: Any) -> Any:
    from metacrm.metadata.values import to_json

    return to_json(coerce(f, value)) if value is not None else None


def create(page: Page, entity_name: str) -> View | Redirect:
    assert page.form is not None
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    offered = _writable_fields(records, entity, "create")
    data = parse_form(entity, offered, page.form, page.locale)
    data = {k: v for k, v in data.items() if not (v is None and k == "owner")}
    unresolved = resolve_lookups(records, entity, offered, page.form, data)
    if unresolved:
        return _form_view(page, entity, record=None, values=data, errors=unresolved, status=422)
    try:
        with page.conn.begin_nested():
            created = records.create(entity.name, data)
    except (Unprocessable, PreconditionFailed) as refused:
        errors = refused.errors or [FieldError("", refused.type_slug, refused.detail)]
        return _form_view(
            page, entity, record=None, values=data, errors=errors, status=refused.status
        )
    return Redirect(f"/app/{entity.name}/{created['id']}?created=1")


def edit_form(page: Page, entity_name: str, record_id: str) -> View:
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    record = records.get(entity.name, record_id)
    records.permissions.require(entity, "update")
    only = _only(page.query.get("fields"), entity)
    return _form_view(page, entity, record=record, values=record, errors=[], only=only)


def _only(raw: str | None, entity: EntityDef) -> list[str] | None:
    if not raw:
        return None
    names = [n for n in raw.split(",") if entity.field(n) is not None]
    return names or None


def save(page: Page, entity_name: str, record_id: str) -> View | Redirect | Data:
    assert page.form is not None
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    record = records.get(entity.name, record_id)
    only = _only(str(page.form.get(FIELDS_FIELD) or ""), entity)
    offered = [
        f for f in _writable_fields(records, entity, "update") if only is None or f.name in only
    ]
    data = parse_form(entity, offered, page.form, page.locale)
    unresolved = resolve_lookups(records, entity, offered, page.form, data)
    if unresolved:
        return _form_view(
            page,
            entity,
            record=record,
            values={**record, **data},
            errors=unresolved,
            status=422,
            only=only,
        )
    # Only what the user changed is sent: a field they didn't touch can't overwrite someone
    # else's change to it.
    started = str(page.form.get(VERSION_FIELD) or "")
    base = _version_values(records, entity, record, started)
    changed = {
        k: v for k, v in data.items() if _differs(entity.field_map[k], v, base.get(k), page.locale)
    }
    version = int(started) if started.isdigit() else record["version"]
    try:
        with page.conn.begin_nested():
            if changed:
                records.update(entity.name, record_id, changed, if_match=version)
    except PreconditionFailed:
        current = records.get(entity.name, record_id)
        others = _changes_since(page, records, entity, record_id, version)
        view = _form_view(
            page,
            entity,
            record=current,
            values={**current, **changed},
            errors=[],
            status=409,
            conflict=others,
            only=only,
            version=current["version"],
        )
        return view
    except Unprocessable as refused:
        return _form_view(
            page,
            entity,
            record=record,
            values={**record, **data},
            errors=refused.errors or [FieldError("", refused.type_slug, refused.detail)],
            status=422,
            only=only,
            version=version,
        )
    if page.wants_fragment:
        return Data({"ok": True, "location": f"/app/{entity.name}/{record_id}"})
    return Redirect(f"/app/{entity.name}/{record_id}?saved=1")


def _version_values(
    records: RecordService, entity: EntityDef, record: dict[str, Any], started: str
) -> dict[str, Any]:
    """The record as the user saw it when the form opened (their version), rebuilt from the
    history: what their edit is compared with."""
    if not started.isdigit() or int(started) >= record["version"]:
        return record
    values = dict(record)
    for entry in records.history(entity.name, record["id"]):
        if entry["version"] <= int(started):
            break
        for name, change in entry["changes"].items():
            values[name] = change.get("old")
    return values


def _differs(f: FieldDef, sent: Any, before: Any, locale: Locale) -> bool:
    if f.type in ("lookup", "user") and isinstance(before, dict):
        before = before.get("id")
    try:
        left = coerce(f, sent) if sent is not None else None
        right = coerce(f, before) if before is not None else None
    except ValueProblem:
        return True
    return bool(left != right)


def _changes_since(
    page: Page, records: RecordService, entity: EntityDef, record_id: str, version: int
) -> list[dict[str, Any]]:
    """What others changed after `version`: per field, the value then and now, and who."""
    from metacrm.app.fields import show

    found: dict[str, dict[str, Any]] = {}
    entries = [e for e in records.history(entity.name, record_id) if e["version"] > version]
    names = user_names(page.conn, {e["changed_by"] for e in entries if e.get("changed_by")})
    for entry in reversed(entries):
        for name, change in entry["changes"].items():
            f = entity.field(name)
            if f is None or f.system:
                continue
            item = found.setdefault(
                name, {"label": field_label(f, page.locale), "old": change.get("old")}
            )
            item["new"] = change.get("new")
            item["by"] = names.get(entry.get("changed_by") or "", "")
    for item_name, item in found.items():
        f = entity.field_map[item_name]
        item["old_text"] = show(f, item["old"], page.locale).text
        item["new_text"] = show(f, item["new"], page.locale).text
    return list(found.values())


def logic(page: Page, entity_name: str, record_id: str | None) -> Data:
    """The live form logic for what the form holds now: which fields show, which are required
    or locked, computed defaults, and validation rule messages — judged by the server's rule
    engine (the page's script asks for the expressions it can't compute itself)."""
    assert page.form is not None
    entity = page.ctx.catalog.entity(entity_name)
    records = page.records()
    action = "update" if record_id else "create"
    offered = _writable_fields(records, entity, action)
    data = parse_form(entity, offered, page.form, page.locale)
    before = records.get(entity.name, record_id) if record_id else None
    draft: dict[str, Any] = {}
    type_errors: dict[str, str] = {}
    for f in entity.fields:
        raw = data[f.name] if f.name in data else (before or {}).get(f.name)
        if isinstance(raw, dict):
            raw = raw.get("id")
        try:
            draft[f.name] = coerce(f, raw) if raw is not None else None
        except ValueProblem as problem:
            draft[f.name] = None
            type_errors[f.name] = error_text(
                FieldError(f.name, problem.code, problem.message), entity, page.locale
            )
    old = None
    if before is not None:
        old = {f.name: _safe(f, _plain(before.get(f.name))) for f in entity.fields}
    rules = page.ctx.rules()
    state: dict[str, dict[str, bool]] = {"visible": {}, "required": {}, "read_only": {}}
    env = rules.env(entity, draft, old)
    for f in entity.fields:
        for option, key in (
            ("visible_if", "visible"),
            ("required_if", "required"),
            ("read_only_if", "read_only"),
        ):
            text = f.doc.get(option)
            if not text:
                continue
            judged_on = rules.env(entity, old, None) if key == "read_only" and old else env
            try:
                state[key][f.name] = rules.condition(entity, text)(judged_on) is True
            except (MetacrmError, TypeError, ValueError, ArithmeticError):
                state[key][f.name] = key == "visible"
    messages: dict[str, str] = dict(type_errors)
    try:
        problems = rule_errors(rules, entity, draft, old, data)
    except (MetacrmError, TypeError, ValueError, ArithmeticError):
        problems = []
    for found in problems:
        if found.code in ("hidden", "read_only"):
            continue
        messages.setdefault(found.field or "", error_text(found, entity, page.locale))
    defaults = {}
    if record_id is None:
        for f in entity.fields:
            if f.doc.get("default_expr") and f.name not in page.form:
                try:
                    defaults[f.name] = _json_value(
                        f, rules.value(entity, f.doc["default_expr"], draft)
                    )
                except (MetacrmError, ValueProblem, TypeError, ValueError, ArithmeticError):
                    continue
    layout = layout_for(records, entity.name)
    sections = {
        part["key"]: rules.condition(entity, part["visible_if"])(env) is True
        for part in layout["sections"]
        if part.get("visible_if") and _judgeable(rules, entity, part["visible_if"])
    }
    return Data({**state, "sections": sections, "errors": messages, "defaults": defaults})


def _judgeable(rules: Any, entity: EntityDef, text: str) -> bool:
    try:
        rules.condition(entity, text)
    except MetacrmError:
        return False
    return True


def _plain(value: Any) -> Any:
    """A lookup's id, whether the record holds the id or the expanded record."""
    return value.get("id") if isinstance(value, dict) else value


def _safe(f: FieldDef, value: Any) -> Any:
    try:
        return coerce(f, value) if value is not None else None
    except ValueProblem:
        return None


async def new_page(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: new_form(page, name))


async def create_submit(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: create(page, name), write=True)


async def edit_page(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(request, lambda page: edit_form(page, name, record_id))


async def edit_submit(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(
        request, lambda page: save(page, name, record_id), write=True
    )


async def new_logic(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: logic(page, name, None))


async def edit_logic(request: Request) -> Response:
    name, record_id = request.path_params["entity"], request.path_params["id"]
    return await app_runtime(request).page(request, lambda page: logic(page, name, record_id))
