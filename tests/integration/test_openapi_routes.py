"""The OpenAPI document lists exactly what the app serves (issue 11: generated from the route
table, not from a second hand-kept list): every route has its operation, and the document names
no path or method the app doesn't serve."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conftest import ACCOUNT, Api
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from metacrm.runtime.api.app import ROUTES
from metacrm.runtime.api.openapi import build_openapi, operation_of
from metacrm.runtime.api.operation import ENTITY_SEGMENT, operation

DOCUMENTED_BY = "declare it with @operation(...) (metacrm/runtime/api/operation.py)"


def is_app_page(path: str) -> bool:
    """The end users' pages (metacrm/app) answer HTML to browsers: they are served beside the
    API but are no part of the integrators' contract, so the document leaves them out."""
    return path == "/app" or path.startswith("/app/")


def served(routes: Iterable[Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of each Starlette API route (HEAD aside: Starlette adds it to every GET)."""
    return {
        (method, route.path)
        for route in routes
        if isinstance(route, Route) and not is_app_page(route.path)
        for method in route.methods or ()
        if method != "HEAD"
    }


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }


def disagreements(table: list[tuple[str, str, Any]], routes: Iterable[Any]) -> list[str]:
    """What the route table, the app's routes and the document disagree on, as sentences."""
    problems = [
        f"{method} {path} has no OpenAPI operation: {DOCUMENTED_BY}"
        for method, path, endpoint in table
        if operation_of(endpoint) is None
    ]
    in_app, in_document = served(routes), documented(build_openapi(table, None))
    problems += [
        f"{m} {p} is served but not in the document"
        for m, p in sorted(in_app - in_document)
        if not any(line.startswith(f"{m} {p} ") for line in problems)
    ]
    problems += [
        f"{m} {p} is in the document but not served" for m, p in sorted(in_document - in_app)
    ]
    return problems


def test_the_document_lists_exactly_the_routes_the_app_serves(sqlite_api: Api) -> None:
    app = sqlite_api.client.app
    assert disagreements(app.state.routes, app.routes) == []
    assert ("GET", "/healthz") in served(app.routes)
    pages = [r for r in app.routes if isinstance(r, Route) and is_app_page(r.path)]
    assert pages, "the server serves the end users' app beside the API"
    assert not any(is_app_page(path) for path in build_openapi(app.state.routes, None)["paths"])


def test_every_entity_gets_every_records_operation(sqlite_api: Api) -> None:
    sqlite_api.make_entity(ACCOUNT)
    document = sqlite_api.get("/api/v1/openapi.json").json()
    generic = [(m, p) for m, p, _ in ROUTES if ENTITY_SEGMENT in p]
    assert len(generic) >= 14
    for method, path in generic:
        concrete = path.replace(ENTITY_SEGMENT, "account")
        assert method.lower() in document["paths"][concrete], f"{method} {concrete}"
    assert not any(ENTITY_SEGMENT in path for path in document["paths"])


async def _undocumented(_request: Request) -> Response:
    return Response()


@operation("ghost", "platform", "Answers, but nothing routes here", response={"type": "string"})
async def _unrouted(_request: Request) -> Response:
    return Response()


def test_a_route_without_an_operation_is_named_with_what_to_do(sqlite_api: Api) -> None:
    app = sqlite_api.client.app
    table = [*app.state.routes, ("DELETE", "/api/v1/things/{id}", _undocumented)]
    routes = [*app.routes, Route("/api/v1/things/{id}", _undocumented, methods=["DELETE"])]
    assert disagreements(table, routes) == [
        f"DELETE /api/v1/things/{{id}} has no OpenAPI operation: {DOCUMENTED_BY}"
    ]


def test_an_operation_the_app_does_not_serve_is_named(sqlite_api: Api) -> None:
    app = sqlite_api.client.app
    table = [*app.state.routes, ("GET", "/api/v1/ghosts", _unrouted)]
    assert disagreements(table, app.routes) == [
        "GET /api/v1/ghosts is in the document but not served"
    ]
