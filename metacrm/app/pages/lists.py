"""An entity's list: a saved view (or the columns the entity suggests), a filter in the rule
language, quick filters for picklists, a search, sorting by a column, keyset pages, a count, and
bulk actions on the selected records (change owner, delete, export CSV)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Data, Page, Redirect, View
from metacrm.app.fields import field_label, option_label
from metacrm.app.messages import expression_error_text
from metacrm.app.pages.auth import app_runtime
from metacrm.app.present import Presenter, columns_for, default_columns, expansions
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import BadRequest, MetacrmError, RuleError
from metacrm.platform.users import active_users
from metacrm.runtime import aggregates, list_views
from metacrm.runtime.api.params import parse_sort
from metacrm.runtime.listing import ListQuery, SortKey

PAGE_SIZE = 50
QUICK_TYPES = ("picklist", "boolean")


@dataclass
class Listing:
    """What the list shows and how it was asked for."""

    entity: EntityDef
    view: dict[str, Any] | None
    views: list[dict[str, Any]]
    filter: str
    sort: str
    q: str
    quick: dict[str, str]
    cursor: str | None


def _params(page: Page, entity: EntityDef, views: list[dict[str, Any]]) -> Listing:
    query = page.query
    wanted = query.get("view")
    view = None
    if wanted:
        view = next((v for v in views if wanted in (v.get("name"), v.get("id"))), None)
    elif "filter" not in query and "sort" not in query:
        view = next((v for v in views if v.get("applies_by_default")), None)
    if view is not None and not view.get("available", True):
        view = None
    quick = {
        key[3:]: value
        for key, value in query.items()
        if key.startswith("qf.") and value and len(value) <= 255
    }
    return Listing(
        entity,
        view,
        views,
        filter=query.get("filter", "").strip(),
        sort=query.get("sort", "") or (view or {}).get("query", {}).get("sort", ""),
        q=query.get("q", "").strip(),
        quick=quick,
        cursor=query.get("cursor") or None,
    )


def _quick_clauses(entity: EntityDef, quick: dict[str, str]) -> list[str]:
    clauses = []
    for name, value in quick.items():
        f = entity.field(name)
        if f is None or f.type not in QUICK_TYPES:
            continue
        if f.type == "boolean":
            if value in ("true", "false"):
                clauses.append(f"{name} == {value}" if value == "true" else f"not {name}")
        elif value in f.options:
            clauses.append(f"{name} == {json.dumps(value, ensure_ascii=False)}")
    return clauses


def combined_filter(listing: Listing) -> str | None:
    parts = []
    view_filter = (listing.view or {}).get("filter")
    for part in (view_filter, listing.filter, *_quick_clauses(listing.entity, listing.quick)):
        if part:
            parts.append(f"({part})")
    return " and ".join(parts) or None


def _link(listing: Listing, **change: Any) -> str:
    """This list's URL with some parameters changed (None removes one)."""
    params: dict[str, str] = {}
    if listing.view is not None:
        params["view"] = str(listing.view.get("name") or listing.view.get("id"))
    if listing.filter:
        params["filter"] = listing.filter
    if listing.sort:
        params["sort"] = listing.sort
    if listing.q:
        params["q"] = listing.q
    params.update({f"qf.{k}": v for k, v in listing.quick.items()})
    for key, value in change.items():
        key = key.replace("__", ".")
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    params.pop("cursor", None) if "cursor" not in change else None
    if change.get("cursor"):
        params["cursor"] = str(change["cursor"])
    text = urlencode(params)
    return f"/app/{listing.entity.name}" + (f"?{text}" if text else "")


def _sort_link(listing: Listing, key: str) -> tuple[str, str | None]:
    """The header link for a column and the current direction on it (asc/desc/None)."""
    current = listing.sort.split(",")[0] if listing.sort else ""
    if current == key:
        return _link(listing, sort=f"-{key}", cursor=None), "asc"
    if current == f"-{key}":
        return _link(listing, sort=key, cursor=None), "desc"
    return _link(listing, sort=key, cursor=None), None


def list_view(page: Page, entity_name: str) -> View:
    catalog = page.ctx.catalog
    entity = catalog.entity(entity_name)
    records = page.records()
    permissions = records.permissions
    permissions.require(entity, "read")
    views = list_views.views_for(records, entity.name)
    listing = _params(page, entity, views)
    shown = permissions.view(entity, probe=False)
    probe = permissions.view(entity, probe=True)
    keys = (listing.view or {}).get("columns") or default_columns(entity, shown)
    columns = columns_for(catalog, entity, shown, keys, page.locale)
    size = int((listing.view or {}).get("page_size") or PAGE_SIZE)
    error: BadRequest | None = None
    result: dict[str, Any] = {"data": [], "next_cursor": None, "count": 0}
    try:
        sort = parse_sort(listing.sort) if listing.sort else (SortKey("updated_at", True),)
        heads = list(dict.fromkeys([c.via.name if c.via else c.key for c in columns]))
        if entity.title_field and shown.field(entity.title_field):
            heads.append(entity.title_field)
        result = records.list(
            entity.name,
            ListQuery(
                filter=combined_filter(listing),
                sort=sort,
                limit=size,
                cursor=listing.cursor,
                fields=tuple(dict.fromkeys(heads)),
                expand=tuple(expansions(columns)),
                q=listing.q or None,
                count=True,
            ),
        )
    except BadRequest as problem:
        error = problem
    presenter = Presenter(page.conn, catalog, entity, page.locale)
    rows = presenter.rows(result["data"], columns)
    quick = _quick_filters(page, records, entity, probe, listing, error is None)
    headers = []
    for column in columns:
        sortable = column.via is None and probe.field(column.key) is not None
        href, direction = _sort_link(listing, column.key) if sortable else (None, None)
        headers.append({"column": column, "href": href, "direction": direction})
    may = {
        action: permissions.may(entity, action)
        for action in ("create", "update", "delete", "export", "transfer")
    }
    return View(
        "list.html",
        {
            "title": page.locale.label(entity.plural_label, entity.name),
            "entity": entity,
            "listing": listing,
            "views": [v for v in views if v.get("available", True)],
            "headers": headers,
            "rows": rows,
            "count": result.get("count"),
            "next_link": _link(listing, cursor=result["next_cursor"])
            if result.get("next_cursor")
            else None,
            "first_link": _link(listing, cursor=None) if listing.cursor else None,
            "error": error,
            "error_text": expression_error_text(error, page.locale) if error else "",
            "quick": quick,
            "may": may,
            "boards": [p for p in catalog.pipelines.values() if p.entity == entity.name],
            "users": active_users(page.conn) if may["transfer"] else [],
            "clear_link": f"/app/{entity.name}?view="
            if (listing.filter or listing.quick or listing.q)
            else None,
            "flash": _flash(page),
        },
        status=400 if error else 200,
    )


def _flash(page: Page) -> str | None:
    done = page.query.get("done")
    if not done or not done.isdigit():
        return None
    what = page.query.get("what", "")
    n = int(done)
    if what == "deleted":
        return page.locale.ngettext("%(num)d record deleted.", "%(num)d records deleted.", n)
    if what == "transferred":
        return page.locale.ngettext(
            "%(num)d record given to a new owner.", "%(num)d records given to a new owner.", n
        )
    return None


def _quick_filters(
    page: Page, records: Any, entity: EntityDef, probe: EntityDef, listing: Listing, ok: bool
) -> list[dict[str, Any]]:
    """Each quick filter with its options and how many records of the list (without that
    filter) have each value."""
    names = (listing.view or {}).get("quick_filters") or []
    found = []
    for name in names:
        f = probe.field(name)
        if f is None or f.type != "picklist":
            continue
        others = dict(listing.quick)
        chosen = others.pop(name, None)
        counts: dict[Any, Any] = {}
        if ok:
            base = Listing(**{**listing.__dict__, "quick": others})
            try:
                counts = aggregates.grouped(
                    records, entity.name, name, filter=combined_filter(base), q=listing.q or None
                )
            except MetacrmError:
                counts = {}
        options = []
        for value in f.options:
            group = counts.get(value)
            options.append(
                {
                    "value": value,
                    "label": option_label(f, value, page.locale),
                    "count": group.count if group else 0,
                    "href": _link(listing, **{f"qf__{name}": None if chosen == value else value}),
                    "active": chosen == value,
                }
            )
        found.append({"name": name, "label": field_label(f, page.locale), "options": options})
    return found


def check_filter(page: Page, entity_name: str) -> Data:
    """The filter box's live check: compiles the expression for this caller, as the list will."""
    text = page.query.get("filter", "")
    if not text.strip():
        return Data({"ok": True})
    records = page.records()
    try:
        records.list(entity_name, ListQuery(filter=text, limit=1, fields=("id",)))
    except RuleError as problem:
        position = problem.position
        return Data(
            {
                "ok": False,
                "text": expression_error_text(problem, page.locale),
                "message": problem.message,
                "line": position.line if position else None,
                "column": position.column if position else None,
                "suggestions": problem.suggestions,
            }
        )
    except BadRequest as problem:
        return Data({"ok": False, "text": problem.detail, "message": problem.detail})
    return Data({"ok": True})


def save_view(page: Page, entity_name: str) -> Redirect:
    """Save what the list shows as one of the user's own views."""
    assert page.form is not None
    form = page.form
    doc: dict[str, Any] = {
        "entity": entity_name,
        "label": str(form.get("label") or "").strip() or page.locale.gettext("My view"),
        "columns": [c for c in str(form.get("columns") or "").split(",") if c],
    }
    for key in ("filter", "sort"):
        value = str(form.get(key) or "").strip()
        if value:
            doc[key] = value
    view = list_views.create_personal(page.records(), doc)
    return Redirect(f"/app/{entity_name}?view={view['id']}")


async def list_page(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: list_view(page, name))


async def filter_check(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: check_filter(page, name))


async def view_save(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: save_view(page, name), write=True)
