"""The app in 简体中文: every page a sales rep opens (home, list, board, record, form, preferences,
sign-in) shows the catalog's Chinese and none of its English, over the CRM templates."""

# Chinese text uses full-width punctuation: that is what is tested.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from conftest import ADMIN_EMAIL, Api
from starlette.testclient import TestClient
from test_plugins import as_admin

from metacrm.app.catalogs import LOCALE, load, po_path
from metacrm.plugins.crm import plugin as crm
from metacrm.plugins.installer import install

V1 = "/api/v1/records"
# What browsers show people: text, and these attributes (tooltips, placeholders, what screen
# readers say, the confirm dialogs the page's script opens).
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "data-confirm", "data-refused")
PLACEHOLDER = re.compile(r"%\(\w+\)[a-z]")


class ShownText(HTMLParser):
    """Every piece of text a page shows (script and style bodies are not shown)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        self.found += [v.strip() for k, v in attrs if k in SHOWN_ATTRIBUTES and v and v.strip()]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.found.append(" ".join(data.split()))


def shown(html: str) -> list[str]:
    parser = ShownText()
    parser.feed(html)
    return parser.found


def english_ui() -> dict[str, str]:
    """The catalog's English messages whose Chinese differs, each piece between placeholders
    (what a page would show of it), with its translation."""
    zh = load(po_path("zh-CN", LOCALE), "zh-CN")
    assert zh is not None
    found = {}
    for message in zh:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        text = message.string[0] if isinstance(message.string, tuple) else message.string
        for english in ids:
            for piece in PLACEHOLDER.split(english):
                piece = piece.strip(" :·,.“”")
                # One-letter pieces and names that stay the same (ID, CSV) say nothing.
                if len(piece) > 2 and piece not in text:
                    found[piece] = text
    return found


def untranslated(html: str, english: dict[str, str]) -> set[str]:
    """English UI text on the page: a shown text that is a catalog message, or a message of
    three words or more inside a shown text."""
    found = set()
    for text in shown(html):
        for piece in english:
            if text == piece or (piece.count(" ") >= 2 and piece in text):
                found.add(piece)
    return found


def sign_in(client: TestClient, language: str) -> None:
    page = client.get(f"/app/login?lang={language}")
    assert page.status_code == 200
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post(
        "/app/login",
        data={"_csrf": token[1], "email": ADMIN_EMAIL, "password": "admin-password"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    preferences = client.get("/app/me")
    csrf = re.search(r'name="_csrf" value="([^"]+)"', preferences.text)
    assert csrf is not None
    saved = client.post(
        "/app/me",
        data={"_csrf": csrf[1], "language": language, "time_zone": "Asia/Shanghai"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text


@pytest.fixture
def crm_app(sqlite_api: Api) -> Iterator[tuple[Api, list[str]]]:
    """The CRM templates with a customer and an opportunity; the pages a rep opens."""
    api = sqlite_api
    as_admin(api, lambda records: install(records, crm))
    customer = api.post(f"{V1}/customer", {"name": "Acme 贸易"})
    assert customer.status_code == 201, customer.text
    deal = api.post(
        f"{V1}/opportunity",
        {"name": "Acme renewal", "customer": customer.json()["id"], "amount": "12000.50"},
    )
    assert deal.status_code == 201, deal.text
    deal_id, customer_id = deal.json()["id"], customer.json()["id"]
    pages = [
        "/app",
        "/app/opportunity",
        "/app/opportunity/board/opportunity_sales",
        f"/app/opportunity/{deal_id}",
        f"/app/opportunity/{deal_id}/edit",
        "/app/opportunity/new",
        f"/app/customer/{customer_id}",
        "/app/lead",
        "/app/me",
        "/app/opportunity?filter=amout+%3E+5",
        "/app/nothing-here",
    ]
    yield api, pages


def test_pages_in_chinese_show_no_english_ui_text(crm_app: tuple[Api, list[str]]) -> None:
    api, pages = crm_app
    english = english_ui()
    sign_in(api.client, "zh-CN")
    for path in pages:
        page = api.client.get(path)
        assert page.status_code in (200, 400, 404), (path, page.status_code, page.text[:500])
        assert '<html lang="zh-CN">' in page.text, path
        assert untranslated(page.text, english) == set(), path
    home = " ".join(shown(api.client.get("/app").text))
    for chinese in ("首页", "个人设置", "退出登录", "待我审批", "通知", "跳到正文"):
        assert chinese in home
    listing = " ".join(shown(api.client.get("/app/opportunity").text))
    for chinese in ("共 1 条记录", "新建", "筛选", "负责人", "全选"):
        assert chinese in listing
    record = " ".join(shown(api.client.get(pages[3]).text))
    for chinese in ("编辑", "变更历史", "创建", "删除"):
        assert chinese in record
    broken = " ".join(shown(api.client.get("/app/opportunity?filter=amout+%3E+5").text))
    # The rule language's own words stay English; where and what was meant are Chinese.
    assert re.search(r"（第 1 行，第 \d+ 列）；您是不是要输入 amount？", broken)
    assert "未找到" in " ".join(shown(api.client.get("/app/nothing-here").text))
    # Time zones are named where they are, in Chinese (CLDR's names), after their ids.
    assert "Asia/Shanghai · 中国（上海）时间" in shown(api.client.get("/app/me").text)


def test_the_same_pages_in_english_are_caught_by_the_check(
    crm_app: tuple[Api, list[str]],
) -> None:
    """The check above can fail: English pages are full of what it looks for."""
    api, pages = crm_app
    english = english_ui()
    sign_in(api.client, "en")
    home = api.client.get("/app")
    assert {"Home", "Preferences", "Sign out", "Skip to content"} <= untranslated(
        home.text, english
    )
    listing = api.client.get("/app/opportunity")
    assert {"Filter", "Select all", "Owner"} <= untranslated(listing.text, english)
    for path in pages:
        assert '<html lang="en">' in api.client.get(path).text, path


def test_the_page_scripts_refusals_come_in_chinese(crm_app: tuple[Api, list[str]]) -> None:
    """What the board's script shows on a refused drag: the reasons, or what the refusal means,
    worded by the server (the script has no words of its own)."""
    api, pages = crm_app
    sign_in(api.client, "zh-CN")
    record = api.client.get(pages[3])
    csrf = re.search(r'name="_csrf" value="([^"]+)"', record.text)
    assert csrf is not None
    script = {"X-Requested-With": "metacrm"}
    # Entering "proposal" needs a close date, which the deal lacks.
    move = {"_csrf": csrf[1], "field": "stage", "stage": "proposal", "_version": "1"}
    refused = api.client.post(f"{pages[3]}/stage", data=move, headers=script)
    assert refused.status_code == 422, refused.text
    reasons = refused.json()["errors"]
    assert reasons and all(re.search("[\u4e00-\u9fff]", r) for r in reasons), reasons
    assert any("预计成交日期" in r or "方案" in r for r in reasons), reasons
    missing = api.client.post(
        "/app/opportunity/01M91KBYF8E58NPHCX1YWVEQ71/stage", data=move, headers=script
    )
    assert missing.status_code == 404
    assert missing.json()["message"] == "未找到"
    board = api.client.get("/app/opportunity/board/opportunity_sales")
    assert 'data-refused="无法移动该卡片，请打开记录查看原因。"' in board.text
