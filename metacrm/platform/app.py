"""The Starlette application factory: routes from the layers above, errors as problem+json,
and the health check."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from metacrm.platform.errors import MetacrmError, TooManyRequests

log = logging.getLogger("metacrm")


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem_response(error: MetacrmError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    return ProblemResponse(error.problem(), status_code=error.status, headers=headers)


async def _metacrm_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MetacrmError)
    return problem_response(exc)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {
        "type": "about:blank",
        "title": exc.detail if isinstance(exc.detail, str) else "error",
        "status": exc.status_code,
        "detail": exc.detail if isinstance(exc.detail, str) else "",
    }
    return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    body = {
        "type": "about:blank",
        "title": "Internal error",
        "status": 500,
        "detail": "something went wrong on our side; it has been logged",
    }
    return ProblemResponse(body, status_code=500)


def health_route(engine: Engine, redis_url: str | None) -> Route:
    async def healthz(_request: Request) -> Response:

        status: dict[str, Any] = {"status": "ok", "database": "ok", "redis": "disabled"}
        try:
            await run_in_threadpool(_ping_database, engine)
        except Exception as exc:  # any failure means unhealthy; say which part
            log.warning("health check: database: %s", exc)
            status.update(status="error", database="error")
        if redis_url:
            try:
                await run_in_threadpool(_ping_redis, redis_url)
                status["redis"] = "ok"
            except Exception as exc:
                log.warning("health check: redis: %s", exc)
                status.update(status="error", redis="error")
        return JSONResponse(status, status_code=200 if status["status"] == "ok" else 503)

    return Route("/healthz", healthz, methods=["GET"])


def _ping_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _ping_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_timeout=2).ping()


def create_app(
    routes: Sequence[BaseRoute], state: dict[str, Any], lifespan: Any = None
) -> Starlette:
    app = Starlette(
        routes=list(routes),
        lifespan=lifespan,
        exception_handlers={
            MetacrmError: _metacrm_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    for key, value in state.items():
        setattr(app.state, key, value)
    return app
