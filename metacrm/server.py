"""The whole web server: the REST API (runtime/api) and, above it, the end users' app at /app
(metacrm/app), over one set of services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from metacrm.app.web import app_routes, app_state
from metacrm.platform.settings import Settings
from metacrm.runtime.api.app import build_app
from metacrm.runtime.services import Services


def _app(services: Services) -> tuple[Sequence[BaseRoute], dict[str, Any]]:
    return app_routes(), app_state(services)


def build_server(
    settings: Settings, engine: Engine | None = None, *, services: Services | None = None
) -> Starlette:
    return build_app(settings, engine, services=services, mounts=_app)
