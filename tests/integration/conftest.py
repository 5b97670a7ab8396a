"""Fixtures for tests of the whole application over a real database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from metacrm.platform.db import make_engine, writing
from metacrm.platform.install import install
from metacrm.platform.settings import Settings
from metacrm.platform.users import create_token, create_user
from metacrm.runtime.api.app import build_app

ADMIN_EMAIL = "admin@example.com"


@dataclass
class Api:
    """A client of a fresh metacrm over a real database, signed in as an admin."""

    client: TestClient
    engine: Engine
    url: str
    token: str

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
                password="a-long-password",
                is_admin=admin,
                roles=roles,
                **place,
            )
            return create_token(conn, user)

    def make_entity(self, document: dict[str, Any]) -> dict[str, Any]:
        response = self.post("/api/v1/meta/entities", document)
        assert response.status_code == 201, response.text
        return response.json()


def start_api(url: str, settings: Settings | None = None) -> Api:
    """`settings` (its database_url is replaced by `url`) tunes the app, e.g. sign-in limits."""
    engine = make_engine(url)
    install(engine)
    with writing(engine) as conn:
        admin = create_user(conn, email=ADMIN_EMAIL, password="admin-password", is_admin=True)
        token = create_token(conn, admin)
    app = build_app(replace(settings or Settings(), database_url=url), engine)
    return Api(TestClient(app, raise_server_exceptions=False), engine, url, token)


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    instance = start_api(database_url)
    with instance.client:
        yield instance
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
