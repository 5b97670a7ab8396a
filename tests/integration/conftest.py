"""Fixtures for tests of the whole application over a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
import pytest
from passwords import password_hash
from sqlalchemy import Connection, Engine
from starlette.testclient import TestClient

from metacrm.platform.clock import utcnow
from metacrm.platform.db import make_engine, writing
from metacrm.platform.install import install
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import TaskQueue
from metacrm.platform.users import User, create_token, create_user
from metacrm.runtime.records import RecordService
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services
from metacrm.runtime.startup import build_services
from metacrm.server import build_server

ADMIN_EMAIL = "admin@example.com"


@dataclass
class Api:
    """A client of a fresh metacrm over a real database, signed in as an admin."""

    client: TestClient
    services: Services
    url: str
    token: str

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", **extra}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(**kw.pop("headers", {})), **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.client.post(
            path, json=json, headers=self.headers(**kw.pop("headers", {})), **kw
        )

    def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.client.put(path, json=json, headers=self.headers(**kw.pop("headers", {})), **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.client.patch(
            path, json=json, headers=self.headers(**kw.pop("headers", {})), **kw
        )

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(path, headers=self.headers(**kw.pop("headers", {})), **kw)

    def new_user(
        self, email: str, *, admin: bool = False, roles: tuple[str, ...] = (), **place: Any
    ) -> str:
        """A user and a token for them (`place`: org_unit=…, manager=… ids)."""
        with writing(self.engine) as conn:
            user = create_user(
                conn,
                email=email,
                password_hash=password_hash("a-long-password"),
                is_admin=admin,
                roles=roles,
                **place,
            )
            return create_token(conn, user)

    def records(self, conn: Connection, user: User, now: datetime | None = None) -> RecordService:
        """The record service for `user` in `conn`'s transaction, at `now` (tests that control
        the clock) or the services' clock."""
        ctx = self.services.context(conn, user)
        return RecordService(replace(ctx, now=now) if now is not None else ctx)

    def services_with(
        self, *, settings: Settings | None = None, clock: Callable[[], datetime] | None = None
    ) -> Services:
        """Services over the same database and registry, with other settings or another clock
        (what a task sees in tests that control time or configure SMTP)."""
        return Services(
            settings or self.services.settings,
            self.engine,
            self.services.registry,
            clock=clock or self.services.clock,
            queue=self.services.queue,
        )

    def make_entity(self, document: dict[str, Any]) -> dict[str, Any]:
        response = self.post("/api/v1/meta/entities", document)
        assert response.status_code == 201, response.text
        return response.json()


class RecordingQueue:
    """A task queue that runs nothing and remembers what was enqueued: a process whose queue
    never hands work on (the sweep's reason to exist), or a test that inspects hand-overs."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[str, tuple[Any, ...]]] = []

    def enqueue(self, name: str, *args: Any, delay: float = 0.0) -> None:
        self.enqueued.append((name, args))

    def close(self) -> None:
        pass


def start_api(
    url: str,
    settings: Settings | None = None,
    *,
    registry: RuntimeRegistry | None = None,
    clock: Any = None,
    queue: TaskQueue | None = None,
) -> Api:
    """A fresh metacrm over the database at `url`: `settings` (its database_url is replaced by
    `url`) tunes the app, e.g. sign-in limits; `registry` replaces the built-in behaviour,
    `clock` the services' clock (tests that control time), `queue` their task queue."""
    engine = make_engine(url)
    install(engine)
    with writing(engine) as conn:
        admin = create_user(
            conn, email=ADMIN_EMAIL, password_hash=password_hash("admin-password"), is_admin=True
        )
        token = create_token(conn, admin)
    settings = replace(settings or Settings(), database_url=url)
    services = build_services(
        settings, engine, registry=registry, clock=clock or utcnow, queue=queue
    )
    app = build_server(settings, services=services)
    return Api(TestClient(app, raise_server_exceptions=False), services, url, token)


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    instance = start_api(database_url)
    with instance.client:
        yield instance
    instance.engine.dispose()


@pytest.fixture
def make_api(database_url: str) -> Iterator[Callable[..., Api]]:
    """Start the app over this test's database with `start_api`'s options (once)."""
    made: list[Api] = []

    def make(**options: Any) -> Api:
        assert not made, "one app per test database"
        instance = start_api(database_url, **options)
        instance.client.__enter__()
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.client.__exit__(None, None, None)
        instance.engine.dispose()


@pytest.fixture
def sqlite_api(sqlite_url: str) -> Iterator[Api]:
    instance = start_api(sqlite_url)
    with instance.client:
        yield instance
    instance.engine.dispose()


ACCOUNT = {
    "name": "account",
    "label": {"en": "Account"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {
            "name": "industry",
            "type": "picklist",
            "options": [{"value": "retail"}, {"value": "energy"}, {"value": "finance"}],
        },
        {"name": "website", "type": "url"},
    ],
}

OPPORTUNITY = {
    "name": "opportunity",
    "label": {"en": "Opportunity", "zh-CN": "商机"},
    "plural_label": {"en": "Opportunities"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "number", "type": "autonumber", "pattern": "OPP-{YYYY}-{seq:5}"},
        {
            "name": "amount",
            "type": "decimal",
            "precision": 14,
            "scale": 2,
            "min": 0,
            "indexed": True,
        },
        {
            "name": "stage",
            "type": "picklist",
            "default": "qualify",
            "indexed": True,
            "options": [
                {"value": "qualify"},
                {"value": "proposal"},
                {"value": "negotiation"},
                {"value": "won"},
                {"value": "lost"},
            ],
        },
        {"name": "account", "type": "lookup", "target": "account"},
        {"name": "close_date", "type": "date", "indexed": True},
        {"name": "probability", "type": "integer", "min": 0, "max": 100},
        {"name": "tags", "type": "multipicklist", "options": [{"value": "hot"}, {"value": "vip"}]},
        {"name": "email", "type": "email"},
        {"name": "closed", "type": "boolean", "default": False},
    ],
}
