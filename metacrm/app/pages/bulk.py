"""Bulk actions on the records selected in a list: give them to another owner, delete them, or
export them as CSV — each through the record service with the caller's permissions (and, for
the export, their masks)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from metacrm.app.context import Page, Redirect, local_target
from metacrm.app.pages.auth import app_runtime
from metacrm.platform.errors import BadRequest, FieldError, Unprocessable
from metacrm.platform.ids import is_valid_id
from metacrm.runtime.exporting import export_records

MAX_SELECTED = 500


def _selected(page: Page) -> list[str]:
    assert page.form is not None
    ids = [str(i) for i in page.form.getlist("ids")]
    if not ids:
        raise BadRequest(page.locale.gettext("Select at least one record first."))
    if len(ids) > MAX_SELECTED or not all(is_valid_id(i) for i in ids):
        raise BadRequest(page.locale.gettext("That selection is not valid."))
    return list(dict.fromkeys(ids))


def bulk(page: Page, entity_name: str) -> Redirect | Response:
    assert page.form is not None
    op = str(page.form.get("op") or "")
    back = local_target(str(page.form.get("back") or ""), f"/app/{entity_name}")
    ids = _selected(page)
    records = page.records()
    if op == "transfer":
        owner = str(page.form.get("owner") or "")
        if not is_valid_id(owner):
            raise Unprocessable(
                page.locale.gettext("Choose the new owner."),
                errors=[
                    FieldError("owner", "required", page.locale.gettext("This field is required."))
                ],
            )
        outcome = records.update_many(entity_name, {i: {"owner": owner} for i in ids})
        return Redirect(_with(back, done=len(outcome.written), what="transferred"))
    if op == "delete":
        for record_id in ids:
            records.delete(entity_name, record_id)
        return Redirect(_with(back, done=len(ids), what="deleted"))
    if op == "export":
        return _csv(page, entity_name, ids)
    raise BadRequest(page.locale.gettext("Unknown action."))


def _csv(page: Page, entity_name: str, ids: list[str]) -> Response:
    records = page.records()
    chosen = "id in " + json.dumps(ids)
    columns, rows = export_records(records, entity_name, chosen)
    out = io.StringIO()
    # A BOM so that Excel reads the file as UTF-8 (Chinese text included).
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(columns)
    for record in rows:
        writer.writerow([_csv_value(record.get(c)) for c in columns])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{entity_name}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A cell starting like a formula is run by spreadsheets: keep it text.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _with(path: str, **params: Any) -> str:
    joiner = "&" if "?" in path else "?"
    return path + joiner + "&".join(f"{k}={v}" for k, v in params.items())


async def bulk_action(request: Request) -> Response:
    name = request.path_params["entity"]
    return await app_runtime(request).page(request, lambda page: bulk(page, name), write=True)
