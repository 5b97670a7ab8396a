"""What every endpoint needs: a database transaction, the caller, and the metadata snapshot.

Requests run their database work in a worker thread, in one transaction that authenticates the
caller, reads the metadata stamp and does the work, in a request context (`Work`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from metacrm.platform.errors import Forbidden, Unauthorized
from metacrm.platform.ratelimit import RateLimiter
from metacrm.platform.signin import SignInPolicy
from metacrm.platform.users import authenticate
from metacrm.runtime.context import RequestContext
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services

T = TypeVar("T")


@dataclass(frozen=True)
class Work(RequestContext):
    """A request's context, with the record service at hand."""

    def records(self) -> RecordService:
        return RecordService(self)

    @property
    def secret(self) -> str:
        return self.host.secret


class Runtime:
    """The API's door to the services: runs endpoint work in a transaction as the caller."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def limiter(self) -> RateLimiter:
        return self.services.limiter

    @property
    def signin_policy(self) -> SignInPolicy:
        return self.services.signin_policy

    async def run(
        self,
        request: Request,
        fn: Callable[[Work], T],
        *,
        write: bool = False,
        admin: bool = False,
    ) -> T:
        token = _bearer(request)
        return await run_in_threadpool(self._run, token, fn, write, admin)

    def _run(self, token: str, fn: Callable[[Work], T], write: bool, admin: bool) -> T:
        services = self.services
        transaction: AbstractContextManager[Connection] = (
            services.writing() if write else services.reading()
        )
        with transaction as conn:
            session = authenticate(conn, token)
            if session is None:
                raise Unauthorized("the token is not valid")
            if admin and not session.user.is_admin:
                raise Forbidden("only admins may change metadata")
            catalog = services.catalog(conn, session.meta_stamp)
            return fn(Work(conn, catalog, session.user, services, now=services.clock()))


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    return request.app.state.runtime


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return token.strip()
