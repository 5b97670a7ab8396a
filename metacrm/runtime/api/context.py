"""What every endpoint needs: a database transaction, the caller, and the metadata snapshot.

Requests run their database work in a worker thread, in one transaction that authenticates the
caller, reads the metadata stamp and does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from metacrm.platform.db import reading, writing
from metacrm.platform.errors import Forbidden, Unauthorized
from metacrm.platform.ratelimit import make_limiter
from metacrm.platform.settings import Settings
from metacrm.platform.signin import SignInPolicy
from metacrm.platform.users import User, authenticate
from metacrm.runtime.catalog import Catalog, CatalogCache
from metacrm.runtime.records import RecordService

T = TypeVar("T")


@dataclass
class Work:
    conn: Connection
    user: User
    catalog: Catalog
    secret: str

    def records(self) -> RecordService:
        return RecordService(self.conn, self.catalog, self.user, self.secret)


class Runtime:
    def __init__(self, settings: Settings, engine: Engine, secret: str) -> None:
        self.settings, self.engine, self.secret = settings, engine, secret
        self.catalogs = CatalogCache()
        # Shared with every process through Redis when configured (sign-in limits).
        self.limiter = make_limiter(settings.redis_url)
        self.signin_policy = SignInPolicy.from_settings(settings)

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
        with (writing if write else reading)(self.engine) as conn:
            session = authenticate(conn, token)
            if session is None:
                raise Unauthorized("the token is not valid")
            if admin and not session.user.is_admin:
                raise Forbidden("only admins may change metadata")
            catalog = self.catalogs.snapshot(conn, session.meta_stamp)
            return fn(Work(conn, session.user, catalog, self.secret))


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    return request.app.state.runtime


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return token.strip()
