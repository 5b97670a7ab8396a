"""The API reference at /api/docs (issue 10: "a bare list"): every operation of the route table,
by tag, with parameters, schemas and examples, readable without a token and without script; the
caller's entities come with their token; nothing is loaded from another host, every value is
escaped, and no data is written into the inline script."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api

from metacrm.runtime.api.openapi import build_openapi

DOCS = "/api/docs"
ENTITIES = "/api/docs/entities"
TEMPLATE = Path(__file__).resolve().parents[2] / "metacrm/runtime/api/templates/docs.html"


class Page(HTMLParser):
    """What the tests look at in a page: ids, links and sources, scripts, tags by class."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.classes: dict[str, int] = {}
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for key in ("href", "src", "action", "formaction", "srcset", "poster", "data"):
            if found.get(key):
                self.urls.append(str(found[key]))
        for name in (found.get("class") or "").split():
            self.classes[f"{tag}.{name}"] = self.classes.get(f"{tag}.{name}", 0) + 1
        if tag == "script":
            self._script, self._text = found, []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None


def page(api: Api) -> tuple[str, Page]:
    response = api.client.get(DOCS)  # no token
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text, Page(response.text)


def test_the_reference_reads_without_a_token_and_shows_every_operation(sqlite_api: Api) -> None:
    html, parsed = page(sqlite_api)
    document = build_openapi(sqlite_api.client.app.state.routes, None)
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) > 70
    for found in operations:
        assert f"op-{found['operationId']}" in parsed.ids, found["operationId"]
    # Readable without script: the operations are in the HTML as it comes, as <details>.
    assert parsed.classes["details.op"] == len(operations)
    for tag in ("platform", "entities", "records", "approvals", "webhooks", "users"):
        assert f"tag-{tag}" in parsed.ids
    assert "/healthz" in html and "/api/v1/records/{entity}/{id}/history" in html


def test_an_operation_shows_its_parameters_schemas_required_fields_and_examples(
    sqlite_api: Api,
) -> None:
    html, _ = page(sqlite_api)
    history = html[html.index('id="op-history"') :]
    history = history[: history.index("</details>")]
    for field in ("changed_at", "changed_by", "changes", "version"):
        assert f'<code class="name">{field}</code>' in history, field
    assert 'href="#schema-HistoryEntry"' in history
    assert "required" in history
    webhook = html[html.index('id="op-create_webhook"') :]
    webhook = webhook[: webhook.index("</details>")]
    assert "Request body" in webhook and 'class="example"' in webhook
    assert "Deals to billing" in webhook  # the operation's own example
    assert "curl -X POST" in webhook
    listing = html[html.index('id="op-list"') :]
    listing = listing[: listing.index("</details>")]
    for parameter in ("filter", "sort", "limit", "cursor", "expand", "count"):
        assert f"<code>{parameter}</code>" in listing, parameter
    assert 'id="schema-Problem"' in html and 'id="schema-Webhook"' in html


def test_nothing_is_loaded_from_another_host(sqlite_api: Api) -> None:
    html, parsed = page(sqlite_api)
    fragment = sqlite_api.get(ENTITIES).text
    for text, found in ((html, parsed), (fragment, Page(fragment))):
        for url in found.urls:
            assert url.startswith(("#", "/")) and not url.startswith("//"), url
        assert not re.search(r"url\(|@import|<link\b|<iframe\b|<img\b", text, re.IGNORECASE)
        assert all("src" not in attrs for attrs, _ in found.scripts)
    [(_, script)] = parsed.scripts
    requested = set(re.findall(r"fetch\(([^,)]+)", script))
    assert requested == {"url", '"/api/docs/entities"'}  # url: a path from the page's forms


def test_the_inline_script_is_the_templates_own_text_with_no_data_in_it(
    sqlite_api: Api,
) -> None:
    sqlite_api.make_entity(ACCOUNT)
    _, parsed = page(sqlite_api)
    [(_, script)] = parsed.scripts
    template = TEMPLATE.read_text("utf-8")
    written = template[template.index("<script>") + len("<script>") : template.index("</script>")]
    assert script == written
    assert "{{" not in written and "{%" not in written


def test_the_try_it_forms_are_hidden_until_the_script_shows_them(sqlite_api: Api) -> None:
    html, parsed = page(sqlite_api)
    forms = re.findall(r'<form class="try"[^>]*>', html)
    assert len(forms) == parsed.classes["details.op"]
    assert all(" hidden" in form for form in forms)
    assert 'data-path="/api/v1/records/{entity}/{id}"' in html
    assert "<noscript>" in html


def test_the_callers_entities_come_with_their_token_and_as_their_roles_show_them(
    api: Api,
) -> None:
    assert api.client.get(ENTITIES).status_code == 401
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    admin = api.get(ENTITIES)
    assert admin.status_code == 200, admin.text
    assert admin.headers["cache-control"] == "no-store"
    shown = Page(admin.text)
    assert {"entity-account", "entity-opportunity"} <= shown.ids
    assert '<code class="name">industry</code>' in admin.text
    role = {
        "name": "viewer",
        "label": {"en": "Viewer"},
        "entities": {
            "account": {"actions": {"read": "all"}, "fields": {"industry": {"access": "hidden"}}}
        },
    }
    assert api.post("/api/v1/meta/roles", role).status_code == 201
    viewer = api.new_user("viewer@example.com", roles=("viewer",))
    theirs = api.get(ENTITIES, headers={"Authorization": f"Bearer {viewer}"})
    assert theirs.status_code == 200, theirs.text
    assert "entity-account" in Page(theirs.text).ids
    assert "entity-opportunity" not in Page(theirs.text).ids
    assert '<code class="name">industry</code>' not in theirs.text


def test_metadata_in_the_reference_is_escaped(sqlite_api: Api) -> None:
    hostile = '<script>alert("x")</script><img src=//evil.example/a.png>'
    sqlite_api.make_entity(
        {
            "name": "note",
            "label": {"en": hostile},
            "fields": [
                {"name": "kind", "type": "picklist", "options": [{"value": hostile}]},
            ],
        }
    )
    fragment = sqlite_api.get(ENTITIES).text
    assert "<script" not in fragment and "<img" not in fragment
    assert "&lt;script&gt;" in fragment
    parsed = Page(fragment)
    assert parsed.scripts == [] and all(url.startswith("#") for url in parsed.urls)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_the_reference_is_compressed_for_clients_that_take_it(
    sqlite_api: Api, encoding: str
) -> None:
    response = sqlite_api.client.get(DOCS, headers={"Accept-Encoding": encoding})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == ("gzip" if encoding == "gzip" else None)
    assert "Accept-Encoding" in response.headers["vary"]
    assert 'id="op-list"' in response.text
