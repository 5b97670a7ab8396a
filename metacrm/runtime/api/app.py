"""The whole web application: every route in one table, wired to one runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from metacrm.platform.app import create_app, health_route
from metacrm.platform.db import refresh_statistics
from metacrm.platform.errors import MetacrmError, NotFound
from metacrm.platform.install import is_installed
from metacrm.platform.invalidation import Listener
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import InProcessQueue
from metacrm.runtime.api import (
    actions,
    approvals,
    assignment_rules,
    automations,
    directory,
    form_layouts,
    list_views,
    meta,
    notifications,
    openapi,
    pipelines,
    records,
    reference,
    roles,
    tokens,
    webhooks,
)
from metacrm.runtime.api.context import Runtime
from metacrm.runtime.api.openapi import RouteRow
from metacrm.runtime.api.operation import Endpoint, Operation, Reply, ref
from metacrm.runtime.services import Services
from metacrm.runtime.startup import build_services

V1 = "/api/v1"

# Every route the app serves, but the health check (built with the engine, below). Each endpoint
# carries its OpenAPI operation (operation.py), from which the document is generated.
ROUTES: list[RouteRow] = [
    ("GET", f"{V1}/openapi.json", openapi.openapi_json),
    ("GET", "/api/docs", reference.docs_page),
    ("GET", "/api/docs/entities", reference.entity_reference),
    ("GET", f"{V1}/meta/entities", meta.list_entities),
    ("POST", f"{V1}/meta/entities", meta.create_entity),
    ("GET", f"{V1}/meta/entities/{{name}}", meta.get_entity),
    ("PUT", f"{V1}/meta/entities/{{name}}", meta.replace_entity),
    ("DELETE", f"{V1}/meta/entities/{{name}}", meta.delete_entity),
    ("POST", f"{V1}/meta/entities/{{name}}/restore", meta.restore_entity),
    ("POST", f"{V1}/meta/entities/{{name}}/fields", meta.add_field),
    ("PATCH", f"{V1}/meta/entities/{{name}}/fields/{{field}}", meta.change_field),
    ("DELETE", f"{V1}/meta/entities/{{name}}/fields/{{field}}", meta.delete_field),
    ("GET", f"{V1}/meta/entities/{{name}}/versions", meta.entity_versions),
    ("POST", f"{V1}/meta/entities/{{name}}/versions/{{version}}/restore", meta.restore_version),
    ("POST", f"{V1}/meta/entities/{{name}}/rules/test", meta.test_rule),
    *roles.ROLES.routes(V1),
    *pipelines.PIPELINES.routes(V1),
    ("GET", f"{V1}/records/{{entity}}/{{id}}/stages", pipelines.stage_timeline),
    ("PUT", f"{V1}/records/{{entity}}/{{id}}/stage-plan", pipelines.put_stage_plan),
    *approvals.APPROVAL_PROCESSES.routes(V1),
    ("POST", f"{V1}/records/{{entity}}/{{id}}/approvals", approvals.submit_record),
    ("GET", f"{V1}/records/{{entity}}/{{id}}/approvals", approvals.list_record_approvals),
    ("GET", f"{V1}/approvals", approvals.list_inbox),
    ("GET", f"{V1}/approvals/{{id}}", approvals.get_approval),
    ("POST", f"{V1}/approvals/{{id}}/approve", approvals.approve),
    ("POST", f"{V1}/approvals/{{id}}/reject", approvals.reject),
    ("POST", f"{V1}/approvals/{{id}}/recall", approvals.recall),
    ("POST", f"{V1}/approvals/{{id}}/reassign", approvals.reassign),
    ("GET", f"{V1}/me/delegations", approvals.my_delegations),
    ("POST", f"{V1}/me/delegations", approvals.delegate),
    ("DELETE", f"{V1}/me/delegations/{{id}}", approvals.end_delegation),
    *automations.AUTOMATIONS.routes(V1),
    *assignment_rules.ASSIGNMENT_RULES.routes(V1),
    *list_views.LIST_VIEWS.routes(V1),
    ("GET", f"{V1}/list-views", list_views.usable_views),
    ("POST", f"{V1}/list-views", list_views.create_view),
    ("GET", f"{V1}/list-views/{{id}}", list_views.get_view),
    ("PUT", f"{V1}/list-views/{{id}}", list_views.replace_view),
    ("DELETE", f"{V1}/list-views/{{id}}", list_views.delete_view),
    *form_layouts.FORM_LAYOUTS.routes(V1),
    ("GET", f"{V1}/layouts/{{entity}}", form_layouts.entity_layout),
    ("GET", f"{V1}/users", directory.list_all_users),
    ("POST", f"{V1}/users", directory.create_one_user),
    ("GET", f"{V1}/users/{{id}}", directory.get_one_user),
    ("PATCH", f"{V1}/users/{{id}}", directory.change_one_user),
    ("GET", f"{V1}/org-units", directory.list_org_units),
    ("POST", f"{V1}/org-units", directory.create_org_unit),
    ("GET", f"{V1}/org-units/{{id}}", directory.get_org_unit),
    ("PATCH", f"{V1}/org-units/{{id}}", directory.change_org_unit),
    ("DELETE", f"{V1}/org-units/{{id}}", directory.delete_org_unit),
    ("GET", f"{V1}/me", directory.me),
    ("GET", f"{V1}/me/permissions", directory.my_permissions),
    ("POST", f"{V1}/tokens", tokens.create_token),
    ("GET", f"{V1}/tokens", tokens.list_tokens),
    ("DELETE", f"{V1}/tokens/{{id}}", tokens.delete_token),
    ("GET", f"{V1}/webhooks", webhooks.list_webhooks),
    ("POST", f"{V1}/webhooks", webhooks.create_webhook),
    ("GET", f"{V1}/webhooks/{{id}}", webhooks.get_webhook),
    ("PATCH", f"{V1}/webhooks/{{id}}", webhooks.change_webhook),
    ("DELETE", f"{V1}/webhooks/{{id}}", webhooks.delete_webhook),
    ("POST", f"{V1}/webhooks/{{id}}/secret", webhooks.rotate_secret),
    ("GET", f"{V1}/webhooks/{{id}}/deliveries", webhooks.list_deliveries),
    ("POST", f"{V1}/webhooks/{{id}}/deliveries/{{delivery}}/replay", webhooks.replay_delivery),
    ("GET", f"{V1}/notifications", notifications.list_notifications),
    ("POST", f"{V1}/notifications/read-all", notifications.read_all),
    ("POST", f"{V1}/notifications/{{id}}/read", notifications.mark_read),
    ("GET", f"{V1}/records/{{entity}}", records.list_records),
    ("POST", f"{V1}/records/{{entity}}", records.create_record),
    ("GET", f"{V1}/records/{{entity}}/{{id}}", records.get_record),
    ("PATCH", f"{V1}/records/{{entity}}/{{id}}", records.update_record),
    ("DELETE", f"{V1}/records/{{entity}}/{{id}}", records.delete_record),
    ("POST", f"{V1}/records/{{entity}}/{{id}}/restore", records.restore_record),
    ("GET", f"{V1}/records/{{entity}}/{{id}}/history", records.record_history),
    ("GET", f"{V1}/records/{{entity}}/{{id}}/shares", records.record_shares),
    ("POST", f"{V1}/records/{{entity}}/{{id}}/shares", records.share_record),
    ("DELETE", f"{V1}/records/{{entity}}/{{id}}/shares/{{share}}", records.unshare_record),
    *actions.ACTIONS.routes(V1),
    ("GET", f"{V1}/records/{{entity}}/{{id}}/actions", actions.list_record_actions),
    ("POST", f"{V1}/records/{{entity}}/{{id}}/actions/{{action}}", actions.run_record_action),
]


HEALTH = Operation(
    "health",
    "platform",
    "Is the service up?",
    description="Checks the database, and Redis when configured. Needs no token.",
    response=ref("Health"),
    also=(Reply(503, ref("Health"), "Unhealthy: the part that failed says error"),),
    public=True,
)


def route_table(engine: Engine, settings: Settings) -> list[RouteRow]:
    """The routes of an app over this engine: ROUTES and the health check."""
    health = health_route(engine, settings.redis_url)
    return [("GET", health.path, Endpoint(health.endpoint, HEALTH)), *ROUTES]


def _routes(table: list[RouteRow]) -> list[Route]:
    by_path: dict[str, dict[str, Endpoint]] = {}
    for method, path, endpoint in table:
        by_path.setdefault(path, {})[method] = endpoint
    # Starlette tries routes in order: the records routes, which nearly every request takes,
    # go first (no other path matches theirs, so the order changes nothing else).
    hot = f"{V1}/records/"
    ordered = sorted(by_path.items(), key=lambda item: not item[0].startswith(hot))
    return [Route(path, _dispatch(methods), methods=list(methods)) for path, methods in ordered]


def _dispatch(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        # No name or id we make has a NUL; PostgreSQL would refuse to even look one up.
        if any("\x00" in value for value in request.path_params.values()):
            raise NotFound("no such resource")
        return await methods[request.method](request)

    return endpoint


def build_app(
    settings: Settings,
    engine: Engine | None = None,
    *,
    services: Services | None = None,
    mounts: Callable[[Services], tuple[Sequence[BaseRoute], dict[str, Any]]] | None = None,
) -> Starlette:
    """The web app over `services` (built with the built-in registry when not given). `mounts`
    adds the routes and state of what sits above the API (the end users' app, in server.py)."""
    services = services or build_services(settings, engine)
    if not is_installed(services.engine):
        raise MetacrmError("the database is not initialised; run `metacrm init` first")
    refresh_statistics(services.engine)
    templates = Environment(
        loader=PackageLoader("metacrm.runtime.api", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    runtime = Runtime(services)
    table = route_table(services.engine, settings)
    extra_routes: Sequence[BaseRoute] = ()
    extra_state: dict[str, Any] = {}
    if mounts is not None:
        extra_routes, extra_state = mounts(services)
    return create_app(
        [*_routes(table), *extra_routes],
        {
            "runtime": runtime,
            "templates": templates,
            "engine": services.engine,
            "routes": table,
            **extra_state,
        },
        lifespan=partial(_background, services),
    )


@asynccontextmanager
async def _background(services: Services, _app: Starlette) -> AsyncIterator[None]:
    """While the app serves: its task queue, and with Redis the metadata-change listener;
    without Redis the periodic jobs run here too, on a timer."""
    queue = services.queue
    listener = None
    if isinstance(queue, InProcessQueue):
        queue.start_periodic()
    if services.settings.redis_url:
        listener = Listener(services.settings.redis_url, services.catalogs.invalidate)
    try:
        yield
    finally:
        if listener is not None:
            listener.close()
        services.close()
