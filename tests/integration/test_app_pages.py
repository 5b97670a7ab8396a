"""The app without a browser, on SQLite and PostgreSQL: signing in and out, CSRF, languages,
lists, record pages, forms (errors, lookups typed as text, stale edits), stage moves, record
actions, approvals and bulk actions — each checked in the HTML a user gets and in the data."""

from __future__ import annotations

import re

import pytest
from app_client import (
    PASSWORD,
    Browser,
    add_user,
    field_error,
    input_value,
    install_crm,
    text_of,
)
from conftest import Api

V1 = "/api/v1"


@pytest.fixture
def crm(api: Api) -> Api:
    install_crm(api)
    return api


@pytest.fixture
def team(crm: Api) -> dict[str, str]:
    """A sales manager with one rep, another rep of theirs, and a service agent."""
    boss = add_user(crm, "boss@example.com", "sales_manager", name="Boss")
    rep = add_user(crm, "rep@example.com", "sales_rep", name="Rep", manager=boss)
    other = add_user(crm, "other@example.com", "sales_rep", name="Other", manager=boss)
    return {"boss": boss, "rep": rep, "other": other}


def browser(api: Api, email: str, language: str = "en") -> Browser:
    b = Browser(api)
    b.sign_in(email, language=language)
    return b


def created_id(response: object) -> str:
    location = response.headers["location"]  # type: ignore[attr-defined]
    found = re.match(r"/app/\w+/(\w+)\?created=1", location)
    assert found, location
    return found.group(1)


# ---- signing in -----------------------------------------------------------------------------


def test_pages_send_a_stranger_to_sign_in_and_back(crm: Api, team: dict[str, str]) -> None:
    b = Browser(crm)
    first = b.get("/app/customer?view=customers_key")
    assert first.status_code == 303
    assert first.headers["location"] == "/app/login?next=/app/customer%3Fview%3Dcustomers_key"
    page = b.get(first.headers["location"])
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert token
    done = b.post(
        "/app/login",
        {
            "email": "rep@example.com",
            "password": PASSWORD,
            "next": "/app/customer?view=customers_key",
            "_csrf": token.group(1),
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/app/customer?view=customers_key"
    cookie = done.headers["set-cookie"]
    assert "mc_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert b.get("/app/customer").status_code == 200


def test_a_wrong_password_says_so_and_opens_nothing(crm: Api, team: dict[str, str]) -> None:
    b = Browser(crm)
    page = b.get("/app/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert token
    refused = b.post(
        "/app/login", {"email": "rep@example.com", "password": "nope", "_csrf": token.group(1)}
    )
    assert refused.status_code == 401
    assert "The email or password is not right." in text_of(refused.text)
    assert 'value="rep@example.com"' in refused.text
    assert b.get("/app").status_code == 303


def test_the_sign_in_form_needs_its_own_token(crm: Api, team: dict[str, str]) -> None:
    b = Browser(crm)
    b.get("/app/login")
    forged = b.post(
        "/app/login", {"email": "rep@example.com", "password": PASSWORD, "_csrf": "forged"}
    )
    assert forged.status_code == 403
    assert b.get("/app").status_code == 303


def test_a_redirect_after_sign_in_never_leaves_the_app(crm: Api, team: dict[str, str]) -> None:
    for target in ("https://evil.example/", "//evil.example/app", "/api/v1/me", "/app\\@evil"):
        b = Browser(crm)
        token = re.search(r'name="_csrf" value="([^"]+)"', b.get("/app/login").text)
        assert token
        done = b.post(
            "/app/login",
            {
                "email": "rep@example.com",
                "password": PASSWORD,
                "next": target,
                "_csrf": token.group(1),
            },
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/app"


def test_signing_out_ends_the_session_and_everywhere_ends_them_all(
    crm: Api, team: dict[str, str]
) -> None:
    laptop, phone = browser(crm, "rep@example.com"), browser(crm, "rep@example.com")
    assert laptop.post("/app/logout").status_code == 303
    assert laptop.get("/app").status_code == 303
    assert phone.get("/app").status_code == 200
    tablet = browser(crm, "rep@example.com")
    assert tablet.post("/app/logout-everywhere").status_code == 303
    assert phone.get("/app").status_code == 303
    assert tablet.get("/app").status_code == 303


def test_a_new_password_or_freezing_ends_the_users_sessions(crm: Api, team: dict[str, str]) -> None:
    rep, other = browser(crm, "rep@example.com"), browser(crm, "other@example.com")
    renamed = crm.patch(f"{V1}/users/{team['rep']}", json={"name": "Rep Renamed"})
    assert renamed.status_code == 200
    assert rep.get("/app").status_code == 200
    changed = crm.patch(f"{V1}/users/{team['rep']}", json={"password": "another-long-password"})
    assert changed.status_code == 200
    assert rep.get("/app").status_code == 303
    assert other.get("/app").status_code == 200
    assert crm.patch(f"{V1}/users/{team['other']}", json={"is_active": False}).status_code == 200
    assert other.get("/app").status_code == 303


# ---- CSRF -------------------------------------------------------------------------------------


def test_a_post_without_the_sessions_token_changes_nothing(crm: Api, team: dict[str, str]) -> None:
    rep, other = browser(crm, "rep@example.com"), browser(crm, "other@example.com")
    for token in ("", "forged", other.csrf):
        refused = rep.post("/app/customer/new", {"name": "Sneaky", "_csrf": token})
        assert refused.status_code == 403
    listed = crm.get(f"{V1}/records/customer", params={"filter": 'name == "Sneaky"'}).json()
    assert listed["data"] == []


def test_a_cross_site_post_is_refused_before_anything_runs(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    for headers in (
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ):
        refused = rep.post("/app/customer/new", {"name": "Cross"}, headers=headers)
        assert refused.status_code == 403
    same = rep.post(
        "/app/customer/new", {"name": "Same site"}, headers={"sec-fetch-site": "same-origin"}
    )
    assert same.status_code == 303
    listed = crm.get(f"{V1}/records/customer", params={"filter": 'name == "Cross"'}).json()
    assert listed["data"] == []


# ---- languages -------------------------------------------------------------------------------


def test_the_language_follows_the_browser_then_the_users_choice(
    crm: Api, team: dict[str, str]
) -> None:
    b = Browser(crm)
    page = b.client.get("/app/login", headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in page.text
    b.sign_in("rep@example.com")
    home = b.get("/app/customer", headers={"accept-language": "en"})
    assert '<html lang="en">' in home.text
    assert "Customers" in home.text
    switched = b.post("/app/language", {"language": "zh-CN", "next": "/app/customer"})
    assert switched.status_code == 303 and switched.headers["location"] == "/app/customer"
    page = b.get("/app/customer", headers={"accept-language": "en"})
    assert '<html lang="zh-CN">' in page.text
    assert "客户" in text_of(page.text)


# ---- lists --------------------------------------------------------------------------------


def test_a_rep_lists_only_what_they_may_read(crm: Api, team: dict[str, str]) -> None:
    rep, other = browser(crm, "rep@example.com"), browser(crm, "other@example.com")
    mine = created_id(rep.post("/app/customer/new", {"name": "Rep's customer"}))
    theirs = created_id(other.post("/app/customer/new", {"name": "Other's customer"}))
    listed = text_of(rep.get("/app/customer").text)
    assert "Rep's customer" in listed and "Other's customer" not in listed
    assert rep.get(f"/app/customer/{theirs}").status_code == 404
    assert rep.get(f"/app/customer/{mine}").status_code == 200
    boss = browser(crm, "boss@example.com")
    both = text_of(boss.get("/app/customer").text)
    assert "Rep's customer" in both and "Other's customer" in both


def test_a_bad_filter_is_explained_under_the_box(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    page = rep.get("/app/customer", params={"filter": "nmae == 1"})
    assert page.status_code == 400
    assert "nmae" in text_of(page.text)
    check = rep.get(
        "/app/customer/check",
        params={"filter": "level == "},
        headers={"x-requested-with": "metacrm"},
    )
    body = check.json()
    assert body["ok"] is False and body["line"] == 1 and body["column"] >= 9
    assert rep.get("/app/customer/check", params={"filter": 'level == "A"'}).json() == {"ok": True}


def test_quick_filters_sorting_and_pages(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    for i in range(60):
        rep.post("/app/customer/new", {"name": f"Firm {i:02d}", "level": "A" if i % 3 else "B"})
    first = rep.get("/app/customer", params={"view": "customers_all", "sort": "name"})
    names = re.findall(r'class="title-link"[^>]*>(Firm \d\d)<', first.text)
    assert names == [f"Firm {i:02d}" for i in range(50)]
    assert "60 records" in text_of(first.text)
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following
    second = rep.get(following.group(1).replace("&amp;", "&"))
    assert re.findall(r'class="title-link"[^>]*>(Firm \d\d)<', second.text) == [
        f"Firm {i:02d}" for i in range(50, 60)
    ]
    only_b = rep.get("/app/customer", params={"view": "customers_all", "qf.level": "B"})
    assert "20 records" in text_of(only_b.text)
    backwards = rep.get("/app/customer", params={"view": "customers_all", "sort": "-name"})
    assert re.findall(r'class="title-link"[^>]*>(Firm \d\d)<', backwards.text)[0] == "Firm 59"


# ---- forms ----------------------------------------------------------------------------------


def test_a_failed_save_keeps_what_was_typed_and_says_why(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    page = rep.post(
        "/app/opportunity/new",
        {"name": "", "amount": "12,500.50", "discount_percent": "120", "customer__title": ""},
    )
    assert page.status_code == 422
    assert field_error(page.text, "name") == "This field is required."
    assert field_error(page.text, "discount_percent") == "Must be at most 100."
    assert input_value(page.text, "amount") == "12500.50"
    assert crm.get(f"{V1}/records/opportunity").json()["data"] == []


def test_a_lookup_typed_as_text_finds_its_record(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Acme Trading"}))
    rep.post("/app/customer/new", {"name": "Acme Logistics"})
    vague = rep.post("/app/opportunity/new", {"name": "Deal", "customer__title": "acme"})
    assert vague.status_code == 422
    assert "Nothing matches" in field_error(vague.text, "customer")
    done = rep.post("/app/opportunity/new", {"name": "Deal", "customer__title": "acme trading"})
    assert done.status_code == 303
    deal = crm.get(f"{V1}/records/opportunity/{created_id(done)}").json()
    assert deal["customer"] == customer
    suggestions = rep.get("/app/customer/search", params={"q": "Acme"}).json()["data"]
    assert sorted(s["title"] for s in suggestions) == ["Acme Logistics", "Acme Trading"]


def test_a_stale_edit_shows_the_other_change_and_keeps_mine(crm: Api, team: dict[str, str]) -> None:
    rep, boss = browser(crm, "rep@example.com"), browser(crm, "boss@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Shared Co"}))
    mine = rep.get(f"/app/customer/{customer}/edit")
    assert input_value(mine.text, "_version") == "1"
    boss.get(f"/app/customer/{customer}/edit")
    assert (
        boss.post(
            f"/app/customer/{customer}/edit",
            {"_version": "1", "name": "Shared Co", "phone": "021-1"},
        ).status_code
        == 303
    )
    stale = rep.post(f"/app/customer/{customer}/edit", {"_version": "1", "name": "Shared Company"})
    assert stale.status_code == 409
    shown = text_of(stale.text)
    assert "Someone else changed this record" in shown and "021-1" in shown and "Boss" in shown
    assert input_value(stale.text, "name") == "Shared Company"
    assert input_value(stale.text, "_version") == "2"
    again = rep.post(f"/app/customer/{customer}/edit", {"_version": "2", "name": "Shared Company"})
    assert again.status_code == 303
    record = crm.get(f"{V1}/records/customer/{customer}").json()
    assert (record["name"], record["phone"]) == ("Shared Company", "021-1")


def test_an_edit_sends_only_what_changed(crm: Api, team: dict[str, str]) -> None:
    """Saving a form opened before someone else's change to another field keeps their change."""
    rep, boss = browser(crm, "rep@example.com"), browser(crm, "boss@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Quiet Co"}))
    boss.post(
        f"/app/customer/{customer}/edit",
        {"_version": "1", "name": "Quiet Co", "website": "https://quiet.example"},
    )
    done = rep.post(
        f"/app/customer/{customer}/edit",
        {"_version": "2", "name": "Quiet Co", "website": "https://quiet.example", "phone": "021-9"},
    )
    assert done.status_code == 303, text_of(done.text)[:3000]
    record = crm.get(f"{V1}/records/customer/{customer}").json()
    assert (record["website"], record["phone"]) == ("https://quiet.example", "021-9")


def test_the_live_logic_answers_for_what_the_form_holds(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    rep.get("/app/opportunity/new")
    lost = rep.post(
        "/app/opportunity/new/logic",
        {"stage": "lost", "name": "x"},
        headers={"x-requested-with": "metacrm"},
    ).json()
    assert lost["sections"]["lost"] is True
    open_one = rep.post(
        "/app/opportunity/new/logic", {"stage": "proposal"}, headers={"x-requested-with": "metacrm"}
    ).json()
    assert open_one["sections"]["lost"] is False
    page = rep.get("/app/opportunity/new")
    assert re.search(r'data-section="lost"[^>]*hidden', page.text)


# ---- record pages, stages, actions -----------------------------------------------------------


def test_a_gated_stage_move_is_refused_with_the_reason(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Gate Co"}))
    deal = created_id(rep.post("/app/opportunity/new", {"name": "Gated", "customer": customer}))
    refused = rep.post(
        f"/app/opportunity/{deal}/stage",
        {"field": "stage", "stage": "proposal", "_version": "1"},
        headers={"x-requested-with": "metacrm"},
    )
    assert refused.status_code == 422
    assert any("Proposal" in e for e in refused.json()["errors"])
    page = rep.post(
        f"/app/opportunity/{deal}/stage", {"field": "stage", "stage": "proposal", "_version": "1"}
    )
    assert page.status_code == 422 and "To enter Proposal" in text_of(page.text)
    rep.post(
        f"/app/opportunity/{deal}/edit",
        {"_version": "1", "name": "Gated", "amount": "5000", "close_date": "2027-03-01"},
    )
    moved = rep.post(
        f"/app/opportunity/{deal}/stage",
        {"field": "stage", "stage": "proposal", "_version": "2"},
        headers={"x-requested-with": "metacrm"},
    )
    assert moved.status_code == 200 and moved.json() == {"ok": True, "version": 3}
    assert crm.get(f"{V1}/records/opportunity/{deal}").json()["stage"] == "proposal"


def test_record_actions_run_from_the_page_with_their_input(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Lost Co"}))
    deal = created_id(rep.post("/app/opportunity/new", {"name": "Lost one", "customer": customer}))
    page = rep.get(f"/app/opportunity/{deal}")
    assert "Mark lost" in page.text and 'name="input.lost_reason"' in page.text
    missing = rep.post(f"/app/opportunity/{deal}/actions/mark_lost", {})
    assert missing.status_code == 422
    assert crm.get(f"{V1}/records/opportunity/{deal}").json()["stage"] == "initial_contact"
    done = rep.post(f"/app/opportunity/{deal}/actions/mark_lost", {"input.lost_reason": "price"})
    assert done.status_code == 303
    record = crm.get(f"{V1}/records/opportunity/{deal}").json()
    assert (record["stage"], record["lost_reason"]) == ("lost", "price")
    after = rep.get(done.headers["location"])
    assert "Done: Mark lost" in text_of(after.text)


def test_a_discount_goes_to_the_manager_who_approves_from_home(
    crm: Api, team: dict[str, str]
) -> None:
    rep, boss = browser(crm, "rep@example.com"), browser(crm, "boss@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Discount Co"}))
    deal = created_id(
        rep.post(
            "/app/opportunity/new",
            {"name": "Big discount", "customer": customer, "discount_percent": "30"},
        )
    )
    home = boss.get("/app")
    assert "Big discount" in text_of(home.text)
    approval = re.search(r'action="/app/approvals/(\w+)/approve"', home.text)
    assert approval
    answered = boss.post(
        f"/app/approvals/{approval.group(1)}/approve", {"comment": "OK this once", "back": "/app"}
    )
    assert answered.status_code == 303 and answered.headers["location"] == "/app?answered=1"
    page = text_of(rep.get(f"/app/opportunity/{deal}").text)
    assert "Approved" in page and "OK this once" in page


def test_masked_values_stay_masked_on_pages(crm: Api, team: dict[str, str]) -> None:
    rep, boss = browser(crm, "rep@example.com"), browser(crm, "boss@example.com")
    customer = created_id(rep.post("/app/customer/new", {"name": "Mask Co"}))
    contact = created_id(
        rep.post("/app/contact/new", {"name": "Li", "customer": customer, "mobile": "13812345678"})
    )
    assert "13812345678" in rep.get(f"/app/contact/{contact}").text
    seen = boss.get(f"/app/contact/{contact}").text
    assert "138****5678" in seen and "13812345678" not in seen
    assert "13812345678" not in boss.get("/app/contact").text


def test_bulk_transfer_delete_and_export(crm: Api, team: dict[str, str]) -> None:
    boss = browser(crm, "boss@example.com")
    ids = [created_id(boss.post("/app/customer/new", {"name": f"Bulk {i}"})) for i in range(3)]
    moved = boss.post(
        "/app/customer/bulk",
        [
            ("op", "transfer"),
            ("owner", team["rep"]),
            ("back", "/app/customer"),
            *[("ids", i) for i in ids[:2]],
        ],
    )
    assert moved.status_code == 303 and "done=2" in moved.headers["location"]
    owners = {crm.get(f"{V1}/records/customer/{i}").json()["owner"] for i in ids[:2]}
    assert owners == {team["rep"]}
    exported = boss.post("/app/customer/bulk", [("op", "export"), ("ids", ids[2])])
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.startswith("\ufeffid,") and "Bulk 2" in exported.text
    assert "Bulk 0" not in exported.text
    gone = boss.post("/app/customer/bulk", [("op", "delete"), *[("ids", i) for i in ids]])
    assert gone.status_code == 303
    assert crm.get(f"{V1}/records/customer").json()["data"] == []
    rep = browser(crm, "rep@example.com")
    nothing = rep.post("/app/customer/bulk", [("op", "delete")])
    assert nothing.status_code == 400


def test_values_that_look_like_markup_render_as_text(crm: Api, team: dict[str, str]) -> None:
    rep = browser(crm, "rep@example.com")
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(1)>{{ 7*7 }}'
    customer = created_id(rep.post("/app/customer/new", {"name": evil}))
    for path in ("/app/customer", f"/app/customer/{customer}", f"/app/customer/{customer}/edit"):
        html = rep.get(path).text
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "{{ 7*7 }}" in html and ">49<" not in html
    assert (
        rep.get(f"/app/customer/{customer}")
        .headers["content-security-policy"]
        .startswith("default-src 'self'")
    )
