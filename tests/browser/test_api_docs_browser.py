"""The API reference's script in real Chromium: a pasted token shows the caller's entities and
signs the requests tried from the page, a link to an operation opens it, and the page fits a
phone's width. Needs Chromium (a skip without it, a failure under CI=true)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from chromium import Browser, find_chromium
from passwords import password_hash
from servers import MissingBinary, free_port, missing

from metacrm.platform.db import make_engine, writing
from metacrm.platform.install import install
from metacrm.platform.users import create_token, create_user

ACCOUNT = {
    "name": "account",
    "label": {"en": "Account"},
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "tier", "type": "picklist", "options": [{"value": "gold"}]},
    ],
}


@dataclass
class Served:
    url: str
    token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`metacrm serve` on a free port over a fresh SQLite database with one entity."""
    try:
        find_chromium()
    except MissingBinary as exc:
        missing(str(exc))
    database = f"sqlite:///{tmp_path}/docs.db"
    engine = make_engine(database)
    install(engine)
    with writing(engine) as conn:
        token = create_token(
            conn,
            create_user(
                conn,
                email="a@example.com",
                password_hash=password_hash("pw-long-enough"),
                is_admin=True,
            ),
        )
    engine.dispose()
    port = free_port()
    env = {**os.environ, "METACRM_DATABASE_URL": database}
    server = subprocess.Popen(
        [sys.executable, "-m", "metacrm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        made = httpx.post(
            f"{url}/api/v1/meta/entities",
            json=ACCOUNT,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        yield Served(url, token)
    finally:
        server.terminate()
        server.wait(timeout=20)


def in_browser(scenario: Callable[[Browser], Awaitable[None]]) -> None:
    async def run() -> None:
        browser = await Browser.start()
        try:
            await scenario(browser)
        finally:
            await browser.close()

    asyncio.run(run())


def js(value: object) -> str:
    return json.dumps(value)


def test_a_pasted_token_shows_the_callers_entities_and_signs_tried_requests(
    served: Served,
) -> None:
    async def scenario(browser: Browser) -> None:
        await browser.open(f"{served.url}/api/docs")
        # The script shows what needs it; without a token, loading entities asks for one.
        assert await browser.evaluate("document.querySelectorAll('form.try[hidden]').length") == 0
        await browser.evaluate("document.getElementById('load-entities').click()")
        assert await browser.until("document.getElementById('token-message').textContent") == (
            "Paste a token first."
        )
        await browser.evaluate(f"document.getElementById('token').value = {js(served.token)}")
        await browser.evaluate("document.getElementById('load-entities').click()")
        await browser.until("!!document.getElementById('entity-account')")
        fields = await browser.evaluate(
            "[...document.querySelectorAll('#entity-account code.name')].map(e => e.textContent)"
        )
        assert {"name", "tier", "owner"} <= set(fields)

        create = "document.querySelector('#op-create form.try')"
        await browser.evaluate(
            f"(() => {{ const f = {create}; f.closest('details').open = true;"
            " f.querySelector('[name=\"path:entity\"]').value = 'account';"
            " f.querySelector('[name=body]').value = JSON.stringify({name: 'Acme'});"
            " f.requestSubmit(); })()"
        )
        status = await browser.until(
            f"{create}.querySelector('.result-status').textContent.match(/^\\d{{3}} .*/)?.[0]"
        )
        assert status.startswith("201 "), status
        created = json.loads(
            await browser.evaluate(f"{create}.querySelector('.result-body').textContent")
        )
        assert created["name"] == "Acme" and created["version"] == 1

        listing = "document.querySelector('#op-list form.try')"
        await browser.evaluate(
            f"(() => {{ const f = {listing};"
            " f.querySelector('[name=\"path:entity\"]').value = 'account';"
            " f.querySelector('[name=\"query:count\"]').value = 'true'; f.requestSubmit(); })()"
        )
        status = await browser.until(
            f"{listing}.querySelector('.result-status').textContent.match(/^\\d{{3}} .*/)?.[0]"
        )
        assert status.startswith("200 ") and "count=true" in status
        page = json.loads(
            await browser.evaluate(f"{listing}.querySelector('.result-body').textContent")
        )
        assert page["count"] == 1

        # A wrong token is the server's 401, shown as it came.
        await browser.evaluate("document.getElementById('token').value = 'mcrm_wrong'")
        await browser.evaluate(f"{listing}.requestSubmit()")
        status = await browser.until(
            f"{listing}.querySelector('.result-status').textContent.match(/^401 .*/)?.[0]"
        )
        assert "GET /api/v1/records/account" in status

    in_browser(scenario)


def test_a_link_to_an_operation_opens_it_and_the_page_fits_a_phone(served: Served) -> None:
    async def scenario(browser: Browser) -> None:
        await browser.open(f"{served.url}/api/docs#op-create_webhook")
        assert await browser.until("document.getElementById('op-create_webhook').open")
        for width in (375, 1366):
            await browser.open(f"{served.url}/api/docs#op-list", width=width)
            await browser.until("document.getElementById('op-list').open")
            overflow = await browser.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow}px wider than a {width}px window"

    in_browser(scenario)
