"""A kanban board of an entity by one of its pipelines: a column per stage with its count and
the sum of an amount, the newest cards of each, drag and drop to move a card (with a form per
card for browsers without script). A refused move comes back with the reasons."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Page, View
from metacrm.app.fields import field_label, show
from metacrm.app.messages import expression_error_text
from metacrm.app.pages.auth import app_runtime
from metacrm.app.present import Presenter, title_of
from metacrm.metadata.model import EntityDef, FieldDef
from metacrm.platform.errors import MetacrmError, NotFound, RuleError
from metacrm.runtime import aggregates
from metacrm.runtime.listing import ListQuery, SortKey

CARDS_PER_COLUMN = 25


def _sum_field(entity: EntityDef, probe: EntityDef, wanted: str | None) -> FieldDef | None:
    """The amount a column sums: the one asked for, else the entity's first decimal field."""
    candidates = [
        f
        for f in probe.fields
        if f.type == "decimal" or (f.type == "formula" and f.doc.get("result_type") == "decimal")
    ]
    if wanted:
        return next((f for f in candidates if f.name == wanted), None)
    plain = [f for f in candidates if f.type == "decimal"]
    found = plain or candidates
    return found[0] if found else None


def board_view(page: Page, entity_name: str, pipeline_name: str) -> View:
    catalog = page.ctx.catalog
    entity = catalog.entity(entity_name)
    pipeline = catalog.pipelines.get(pipeline_name)
    if pipeline is None or pipeline.entity != entity.name:
        raise NotFound(
            page.locale.gettext(
                "%(entity)s have no board named “%(name)s”.",
                entity=page.locale.label(entity.plural_label, entity.name),
                name=pipeline_name,
            )
        )
    records = page.records()
    permissions = records.permissions
    permissions.require(entity, "read")
    probe = permissions.view(entity, probe=True)
    shown = permissions.view(entity, probe=False)
    locale = page.locale
    user_filter = page.query.get("filter", "").strip()
    q = page.query.get("q", "").strip() or None
    total_field = _sum_field(entity, probe, page.query.get("sum"))
    error = None
    groups: dict[Any, aggregates.Group] = {}
    try:
        groups = aggregates.grouped(
            records,
            entity.name,
            pipeline.field,
            total_of=total_field.name if total_field else None,
            filter=user_filter or None,
            q=q,
        )
    except (RuleError, MetacrmError) as problem:
        error = problem
    presenter = Presenter(page.conn, catalog, entity, locale)
    title = entity.title_field
    show_fields = [n for n in (total_field.name if total_field else None, "owner") if n]
    columns = []
    may_move = permissions.may(entity, "update") and shown.field(pipeline.field) is not None
    for stage in pipeline.stages:
        condition = f"{pipeline.field} == {json.dumps(stage.key)}"
        if user_filter:
            condition = f"({user_filter}) and {condition}"
        cards: list[dict[str, Any]] = []
        if error is None:
            try:
                result = records.list(
                    entity.name,
                    ListQuery(
                        filter=condition,
                        sort=(SortKey("updated_at", True),),
                        limit=CARDS_PER_COLUMN,
                        fields=tuple(n for n in ("id", "version", title, *show_fields) if n),
                        q=q,
                    ),
                )
            except MetacrmError as problem:
                error = problem
                result = {"data": []}
            presenter.learn_users(result["data"], [entity.field_map["owner"]])
            for r in result["data"]:
                cards.append(
                    {
                        "id": r["id"],
                        "version": r.get("version"),
                        "title": title_of(entity, r, locale),
                        "amount": show(total_field, r.get(total_field.name), locale).text
                        if total_field
                        else "",
                        "owner": presenter.users.get(r.get("owner") or "", ""),
                        "next": [
                            (s.key, locale.label(s.label, s.key))
                            for s in pipeline.stages
                            if s.key != stage.key and pipeline.allows(stage.key, s.key)
                        ],
                    }
                )
        group = groups.get(stage.key)
        columns.append(
            {
                "key": stage.key,
                "label": locale.label(stage.label, stage.key),
                "category": stage.category,
                "count": group.count if group else 0,
                "total": locale.number(
                    group.total,
                    total_field.scale if total_field and total_field.type == "decimal" else 2,
                )
                if group and group.total is not None
                else None,
                "cards": cards,
                "more": (group.count if group else 0) > len(cards),
                "list_link": f"/app/{entity.name}?view=&filter=" + quote(condition, safe=""),
            }
        )
    back = page.path + (f"?{page.query}" if str(page.query) else "")
    return View(
        "board.html",
        {
            "title": locale.gettext(
                "%(entity)s by %(pipeline)s",
                entity=locale.label(entity.plural_label, entity.name),
                pipeline=locale.label(pipeline.doc.get("label"), pipeline.name),
            ),
            "entity": entity,
            "pipeline": pipeline,
            "columns": columns,
            "sum_label": field_label(total_field, locale) if total_field else None,
            "filter": user_filter,
            "q": q or "",
            "error": error,
            "error_text": expression_error_text(error, locale) if error else "",
            "may_move": may_move,
            "back": back,
        },
        status=400 if error else 200,
    )


async def board_page(request: Request) -> Response:
    params = request.path_params
    return await app_runtime(request).page(
        request, lambda page: board_view(page, params["entity"], params["pipeline"])
    )
