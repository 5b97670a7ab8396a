"""The home page: what is on the user's desk — their open records by stage, the approvals
waiting for them, their notifications, and their records past a follow-up date or stalled in a
stage longer than its target. Everything is found from metadata (pipelines, follow-up fields),
never from an entity's name."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Page, View
from metacrm.app.fields import field_label
from metacrm.app.pages.auth import app_runtime
from metacrm.app.present import title_of
from metacrm.metadata.model import EntityDef
from metacrm.metadata.pipelines import PipelineDef
from metacrm.platform.errors import MetacrmError
from metacrm.platform.users import user_names
from metacrm.runtime import aggregates, approvals, notifications
from metacrm.runtime.listing import ListQuery, SortKey
from metacrm.runtime.records import RecordService

OVERDUE_LIMIT = 8


def _open_stages(pipeline: PipelineDef) -> list[str]:
    return [s.key for s in pipeline.stages if s.category == "open"]


def _pipelines_of(page: Page, entity: EntityDef) -> list[PipelineDef]:
    return [
        p
        for p in page.ctx.catalog.pipelines.values()
        if p.entity == entity.name and entity.field(p.field) is not None
    ]


def _filter_link(entity: EntityDef, condition: str) -> str:
    return f"/app/{entity.name}?view=&filter={quote(condition, safe='')}"


def home_view(page: Page) -> View:
    records = page.records()
    permissions = records.permissions
    locale = page.locale
    mine = []
    overdue = []
    for entity in page.ctx.catalog.entities.values():
        if not permissions.may(entity, "read"):
            continue
        for pipeline in _pipelines_of(page, entity):
            stages = _open_stages(pipeline)
            if not stages:
                continue
            condition = f"owner == $user.id and {pipeline.field} in {json.dumps(stages)}"
            try:
                groups = aggregates.grouped(records, entity.name, pipeline.field, filter=condition)
            except MetacrmError:
                continue
            total = sum(g.count for g in groups.values())
            if not total:
                continue
            mine.append(
                {
                    "label": locale.label(entity.plural_label, entity.name),
                    "total": total,
                    "link": _filter_link(entity, condition),
                    "stages": [
                        {
                            "label": locale.label(s.label, s.key),
                            "count": groups[s.key].count,
                            "link": _filter_link(
                                entity,
                                f"owner == $user.id and {pipeline.field} == {json.dumps(s.key)}",
                            ),
                        }
                        for s in pipeline.stages
                        if s.key in groups and s.key in stages
                    ],
                }
            )
        overdue += _overdue(page, records, entity)
    inbox = approvals.inbox(records, page.ctx.user.id, "pending")
    submitters = user_names(page.conn, {i["submitted_by"] for i in inbox})
    waiting = [
        {
            **item,
            "label": locale.label(item.get("process_label"), item["process"]),
            "submitter": submitters.get(item["submitted_by"], ""),
            "link": f"/app/{item['entity']}/{item['record_id']}",
        }
        for item in inbox
    ]
    news = notifications.inbox_of(page.conn, page.ctx.user.id, unread_only=False, limit=10)
    return View(
        "home.html",
        {
            "title": locale.gettext("Home"),
            "mine": mine,
            "waiting": waiting,
            "notifications": [_notification(page, n) for n in news["data"]],
            "overdue": overdue,
            "flash": locale.gettext("Your answer is recorded.")
            if page.query.get("answered")
            else None,
        },
    )


def _notification(page: Page, item: dict[str, Any]) -> dict[str, Any]:
    link = None
    if item.get("entity") and item.get("record_id"):
        link = f"/app/{item['entity']}/{item['record_id']}"
    return {**item, "link": link, "when": _when(page, item.get("created_at"))}


def _when(page: Page, text: str | None) -> str:
    from datetime import datetime

    if not text:
        return ""
    return page.locale.datetime_text(datetime.fromisoformat(text.replace("Z", "+00:00")), "short")


def _overdue(page: Page, records: RecordService, entity: EntityDef) -> list[dict[str, Any]]:
    """The user's open records whose follow-up date has passed, and those stalled in a stage
    past its target days."""
    locale = page.locale
    found = []
    open_parts = [
        f"{p.field} in {json.dumps(_open_stages(p))}" for p in _pipelines_of(page, entity)
    ]
    still_open = " and ".join(f"({part})" for part in open_parts) if open_parts else "true"
    for f in entity.fields:
        if not f.follow_up:
            continue
        past = "now()" if f.type == "datetime" else "today()"
        condition = f"owner == $user.id and {f.name} < {past} and {still_open}"
        found += _items(page, records, entity, condition, (SortKey(f.name),), f.name, "due")
    for pipeline in _pipelines_of(page, entity):
        late = [
            f"({pipeline.field} == {json.dumps(s.key)} and days_in_stage > {s.target_days})"
            for s in pipeline.stages
            if s.category == "open" and s.target_days
        ]
        if not late or entity.field("days_in_stage") is None:
            continue
        condition = f"owner == $user.id and ({' or '.join(late)})"
        found += _items(
            page,
            records,
            entity,
            condition,
            (SortKey("stage_entered_at"),),
            "days_in_stage",
            "stalled",
        )
    del locale
    return found


def _items(
    page: Page,
    records: RecordService,
    entity: EntityDef,
    condition: str,
    sort: tuple[SortKey, ...],
    field_name: str,
    why: str,
) -> list[dict[str, Any]]:
    locale = page.locale
    title = entity.title_field
    fields = tuple(n for n in ("id", title, field_name) if n)
    try:
        result = records.list(
            entity.name, ListQuery(filter=condition, sort=sort, limit=OVERDUE_LIMIT, fields=fields)
        )
    except MetacrmError:
        return []
    f = entity.field_map[field_name]
    from metacrm.app.fields import show

    return [
        {
            "title": title_of(entity, r, locale),
            "entity": locale.label(entity.label, entity.name),
            "link": f"/app/{entity.name}/{r['id']}",
            "why": why,
            "what": field_label(f, locale),
            "value": show(f, r.get(field_name), locale).text,
        }
        for r in result["data"]
    ]


async def home_page(request: Request) -> Response:
    return await app_runtime(request).page(request, home_view)
