"""The app's routes, and what it needs at start-up (its templates and its runtime)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from metacrm.app.context import AppRuntime
from metacrm.app.pages import auth, bulk, forms, home, kanban, lists, records
from metacrm.runtime.services import Services

E, ID = "{entity}", "{id}"


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("metacrm.app", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


async def _to_app(_request: Request) -> Response:
    return RedirectResponse("/app", status_code=307)


def app_routes() -> list[BaseRoute]:
    """Every route under /app. Fixed paths come before the entity patterns they would match."""
    get, post = ["GET"], ["POST"]
    return [
        Route("/app", home.home_page, methods=get),
        Route("/app/", _to_app, methods=get),
        Mount("/app/static", StaticFiles(packages=[("metacrm.app", "static")]), name="static"),
        Route("/app/login", auth.sign_in_page, methods=get),
        Route("/app/login", auth.sign_in_submit, methods=post),
        Route("/app/logout", auth.sign_out, methods=post),
        Route("/app/logout-everywhere", auth.sign_out_everywhere, methods=post),
        Route("/app/language", auth.switch_language, methods=post),
        Route("/app/me", auth.preferences, methods=get),
        Route("/app/me", auth.save_preferences, methods=post),
        Route(f"/app/approvals/{ID}/approve", records.approve, methods=post),
        Route(f"/app/approvals/{ID}/reject", records.reject, methods=post),
        Route(f"/app/{E}", lists.list_page, methods=get),
        Route(f"/app/{E}/check", lists.filter_check, methods=get),
        Route(f"/app/{E}/search", records.lookup_search, methods=get),
        Route(f"/app/{E}/views", lists.view_save, methods=post),
        Route(f"/app/{E}/bulk", bulk.bulk_action, methods=post),
        Route(f"/app/{E}/new", forms.new_page, methods=get),
        Route(f"/app/{E}/new", forms.create_submit, methods=post),
        Route(f"/app/{E}/new/logic", forms.new_logic, methods=post),
        Route(f"/app/{E}/board/{{pipeline}}", kanban.board_page, methods=get),
        Route(f"/app/{E}/{ID}", records.record_page, methods=get),
        Route(f"/app/{E}/{ID}/edit", forms.edit_page, methods=get),
        Route(f"/app/{E}/{ID}/edit", forms.edit_submit, methods=post),
        Route(f"/app/{E}/{ID}/logic", forms.edit_logic, methods=post),
        Route(f"/app/{E}/{ID}/stage", records.stage_submit, methods=post),
        Route(f"/app/{E}/{ID}/actions/{{action}}", records.action_submit, methods=post),
        Route(f"/app/{E}/{ID}/approvals", records.approval_submit, methods=post),
        Route(f"/app/{E}/{ID}/delete", records.delete_submit, methods=post),
    ]


def app_state(services: Services) -> dict[str, object]:
    """What the app's handlers find on `request.app.state`."""
    return {"app_runtime": AppRuntime(services, templates())}
