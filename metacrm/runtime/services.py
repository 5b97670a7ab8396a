"""The services of one process over one database: settings, engine, the start-up registry, the
metadata cache, the task queue, the secret that signs list cursors, and the clock.

Whoever starts a process (the web app, the CLI, a Celery worker) builds one with
`runtime.startup.build_services` and passes it down; it is also the host background tasks run
with. Nothing here is global: two of them (two apps in one test) never share state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from metacrm.platform import db
from metacrm.platform.clock import utcnow
from metacrm.platform.install import SECRET_KEY, stored_setting
from metacrm.platform.invalidation import announce_after_commit
from metacrm.platform.queues import start_queue
from metacrm.platform.ratelimit import make_limiter
from metacrm.platform.settings import Settings
from metacrm.platform.signin import SignInPolicy
from metacrm.platform.tasks import TaskQueue
from metacrm.platform.users import User
from metacrm.runtime.catalog import Catalog, CatalogCache
from metacrm.runtime.context import RequestContext
from metacrm.runtime.registry import RuntimeRegistry

# Who background jobs act as: an admin no person signs in as. History names it "system".
SYSTEM_USER = User(id="system", email="system@localhost", name="metacrm", is_admin=True)


class Services:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        registry: RuntimeRegistry,
        *,
        clock: Callable[[], datetime] = utcnow,
        queue: TaskQueue | None = None,
    ) -> None:
        """`queue` shares another's task queue (or a test's); by default the services start
        their own on first use, and close it in `close`."""
        self.settings, self.engine, self.registry = settings, engine, registry
        self.catalogs = CatalogCache()
        self.clock = clock
        self._secret: str | None = settings.secret_key
        self._queue: TaskQueue | None = queue
        self._owns_queue = queue is None
        self._lock = threading.Lock()
        # Sign-in attempts are counted across processes through Redis when configured.
        self.limiter = make_limiter(settings.redis_url)
        self.signin_policy = SignInPolicy.from_settings(settings)

    @property
    def secret(self) -> str:
        """Signs list cursors: the setting, else the one `init` stored in the database."""
        if self._secret is None:
            with db.reading(self.engine) as conn:
                self._secret = stored_setting(conn, SECRET_KEY) or ""
        return self._secret

    @property
    def queue(self) -> TaskQueue:
        """The task queue, started on first use: Celery over Redis when configured, otherwise
        threads in this process that run the tasks with these services."""
        with self._lock:
            if self._queue is None:
                self._queue = start_queue(self.settings, self.registry, self)
            return self._queue

    def close(self) -> None:
        with self._lock:
            queue, self._queue = self._queue, None
        if queue is not None and self._owns_queue:
            queue.close()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction; a metadata change it commits is announced to other processes."""
        with db.writing(self.engine) as conn:
            yield conn
            announce_after_commit(conn, self.settings.redis_url)

    def reading(self) -> AbstractContextManager[Connection]:
        return db.reading(self.engine)

    def catalog(self, conn: Connection, stamp: int | None = None) -> Catalog:
        return self.catalogs.snapshot(conn, stamp)

    def context(
        self, conn: Connection, user: User, *, catalog: Catalog | None = None
    ) -> RequestContext:
        """Work in `conn`'s transaction as `user`, at this moment of the services' clock."""
        return RequestContext(conn, catalog or self.catalog(conn), user, self, now=self.clock())

    def system_context(self, conn: Connection) -> RequestContext:
        """Work done by the platform itself (periodic jobs, event dispatch)."""
        return self.context(conn, SYSTEM_USER)
