"""A browser-like client of the app for tests without a browser: its own cookie jar, the CSRF
token of the last page it saw sent back with every form, and the page's HTML parsed for what
tests look at (errors next to fields, flashes, table cells)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
from conftest import Api
from passwords import password_hash
from starlette.testclient import TestClient

from metacrm.platform.db import writing
from metacrm.platform.users import create_user, find_user
from metacrm.plugins.crm import plugin as crm
from metacrm.plugins.installer import install

PASSWORD = "a-long-password"
CSRF = re.compile(r'data-csrf="([^"]*)"')
FORM_CSRF = re.compile(r'name="_csrf" value="([^"]*)"')


def install_crm(api: Api) -> None:
    """The CRM templates, installed as `metacrm init` installs them."""
    with api.services.writing() as conn:
        admin = find_user(conn, "admin@example.com")
        install(api.records(conn, admin), crm)


def add_user(api: Api, email: str, *roles: str, name: str = "", **place: Any) -> str:
    """A user who signs in with PASSWORD; returns their id."""
    with writing(api.engine) as conn:
        user = create_user(
            conn,
            email=email,
            name=name or email.split("@")[0].capitalize(),
            password_hash=password_hash(PASSWORD),
            roles=roles,
            **place,
        )
        return user.id


class Browser:
    """One signed-in browser."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = TestClient(api.client.app, raise_server_exceptions=False)
        self.csrf = ""
        self.last: httpx.Response | None = None

    def get(self, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("follow_redirects", False)
        response = self.client.get(path, **kw)
        self._remember(response)
        return response

    def post(
        self, path: str, data: dict[str, Any] | list[tuple[str, Any]] | None = None, **kw: Any
    ) -> httpx.Response:
        items = list(data.items()) if isinstance(data, dict) else list(data or [])
        if not any(k == "_csrf" for k, _ in items):
            items.append(("_csrf", self.csrf))
        response = self.client.post(
            path,
            content=_encode(items),
            headers={"content-type": "application/x-www-form-urlencoded", **kw.pop("headers", {})},
            follow_redirects=kw.pop("follow_redirects", False),
            **kw,
        )
        self._remember(response)
        return response

    def _remember(self, response: httpx.Response) -> None:
        self.last = response
        if "text/html" in response.headers.get("content-type", ""):
            found = CSRF.search(response.text) or FORM_CSRF.search(response.text)
            if found and found.group(1):
                self.csrf = found.group(1)

    def sign_in(self, email: str, password: str = PASSWORD, *, language: str = "en") -> None:
        page = self.get(f"/app/login?lang={language}")
        assert page.status_code == 200
        token = FORM_CSRF.search(page.text)
        assert token is not None
        done = self.post(
            "/app/login", {"email": email, "password": password, "_csrf": token.group(1)}
        )
        assert done.status_code == 303, done.text
        self.get(done.headers["location"])


def _encode(items: list[tuple[str, Any]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode([(k, "" if v is None else str(v)) for k, v in items]).encode()


def text_of(html: str) -> str:
    """The page's visible text, tags dropped and whitespace folded (for `in` checks)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def field_error(html: str, field: str) -> str:
    found = re.search(rf'id="f-{re.escape(field)}-error"[^>]*>([^<]*)<', html)
    return unescape(found.group(1)).strip() if found else ""


def input_value(html: str, field: str) -> str | None:
    found = re.search(rf'<input[^>]*name="{re.escape(field)}"[^>]*value="([^"]*)"', html)
    return unescape(found.group(1)) if found else None
