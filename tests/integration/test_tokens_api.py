"""Signing in for a token (`POST /api/v1/tokens`), listing and revoking tokens, on SQLite and
PostgreSQL: every failure alike, limits per account and per address, no secret ever listed."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import ADMIN_EMAIL, Api, start_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from passwords import password_hash
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from servers import RedisServer
from sqlalchemy import func, select
from starlette.testclient import TestClient

from metacrm.platform.db import reading, writing
from metacrm.platform.errors import Unprocessable
from metacrm.platform.ratelimit import InProcessLimiter, Limit
from metacrm.platform.settings import Settings
from metacrm.platform.signin import SignInPolicy, sign_in
from metacrm.platform.systables import api_tokens
from metacrm.platform.users import create_user
from metacrm.runtime.api.app import build_app

TOKENS = "/api/v1/tokens"
ANN, ANN_PASSWORD = "ann@example.com", "ann-password-1"
BOB, BOB_PASSWORD = "bob@example.com", "bob-password-1"
# Small limits, so a test reaches them in a few argon2 verifications.
LIMITS = Settings(signin_account_attempts=3, signin_address_attempts=6, signin_window=600)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def _crm(url: str) -> Iterator[Api]:
    """An admin (the fixture's token) who has made Ann and Bob through the API."""
    instance = start_api(url, LIMITS)
    with instance.client:
        for email, password in ((ANN, ANN_PASSWORD), (BOB, BOB_PASSWORD)):
            made = instance.post("/api/v1/users", {"email": email, "password": password})
            assert made.status_code == 201, made.text
        yield instance
    instance.engine.dispose()


@pytest.fixture
def crm(database_url: str) -> Iterator[Api]:
    yield from _crm(database_url)


@pytest.fixture
def sqlite_crm(sqlite_url: str) -> Iterator[Api]:
    """For what the database plays no part in (limits, body checks): SQLite only, as every
    argon2 verification costs a tenth of a second."""
    yield from _crm(sqlite_url)


def client_at(api: Api, address: str) -> TestClient:
    """A client of the same app calling from another address."""
    return TestClient(api.client.app, client=(address, 50000), raise_server_exceptions=False)


def sign_in_as(client: TestClient, email: str, password: str, **more: Any) -> httpx.Response:
    return client.post(TOKENS, json={"email": email, "password": password, **more})


def token_of(client: TestClient, email: str, password: str, name: str = "test") -> str:
    response = sign_in_as(client, email, password, name=name)
    assert response.status_code == 201, response.text
    return response.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_count(api: Api) -> int:
    with reading(api.engine) as conn:
        return conn.execute(select(func.count()).select_from(api_tokens)).scalar_one()


# ---- signing in ------------------------------------------------------------------------------


def test_a_user_the_admin_made_signs_in_and_the_token_works(crm: Api) -> None:
    response = sign_in_as(crm.client, "  Ann@Example.com", ANN_PASSWORD, name="laptop")
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"id", "name", "token", "created_at"}
    assert body["name"] == "laptop" and body["token"].startswith("mcrm_")
    assert body["created_at"].endswith("Z")
    me = crm.client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200 and me.json()["email"] == ANN


def test_a_token_without_a_name_is_named_sign_in(crm: Api) -> None:
    response = sign_in_as(crm.client, ANN, ANN_PASSWORD)
    assert response.status_code == 201 and response.json()["name"] == "sign-in"


def test_wrong_password_unknown_email_and_frozen_user_get_the_same_answer(crm: Api) -> None:
    before = token_count(crm)
    wrong = sign_in_as(crm.client, ANN, "not-her-password")
    unknown = sign_in_as(crm.client, "nobody@example.com", ANN_PASSWORD)
    bob = crm.get("/api/v1/users").json()["data"]
    bob_id = next(u["id"] for u in bob if u["email"] == BOB)
    assert crm.patch(f"/api/v1/users/{bob_id}", {"is_active": False}).status_code == 200
    frozen = sign_in_as(crm.client, BOB, BOB_PASSWORD)
    for response in (wrong, unknown, frozen):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert wrong.json() == unknown.json() == frozen.json()
    assert "email or password" in wrong.json()["detail"]
    assert token_count(crm) == before


def test_an_unknown_email_costs_as_much_as_a_wrong_password(sqlite_api: Api) -> None:
    """Checked against a dummy hash: otherwise its answer comes many times faster and tells
    which emails have accounts."""
    with writing(sqlite_api.engine) as conn:
        create_user(conn, email=ANN, password_hash=password_hash(ANN_PASSWORD))
    lots = SignInPolicy(Limit(1000, 600), Limit(1000, 600))
    limiter = InProcessLimiter()

    def seconds(email: str) -> float:
        start = time.perf_counter()
        with pytest.raises(Exception, match="email or password"):
            sign_in(sqlite_api.engine, limiter, lots, email=email, password="wrong", address=None)
        return time.perf_counter() - start

    seconds(ANN)  # the dummy hash and the connection are made once, on first use
    seconds("warm@example.com")
    known = statistics.median(seconds(ANN) for _ in range(5))
    unknown = statistics.median(seconds(f"x{n}@example.com") for n in range(5))
    assert unknown > known * 0.5, (known, unknown)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"email": ANN},
        {"password": ANN_PASSWORD},
        {"email": 1, "password": ANN_PASSWORD},
        {"email": ANN, "password": ""},
        {"email": ANN, "password": ANN_PASSWORD, "role": "admin"},
        {"email": ANN + "\x00", "password": ANN_PASSWORD},
        {"email": ANN, "password": ANN_PASSWORD, "name": "x" * 201},
        {"email": ANN, "password": ANN_PASSWORD, "name": ""},
        {"email": ANN, "password": ANN_PASSWORD, "name": "  "},
    ],
    ids=[
        "not-an-object",
        "no-password",
        "no-email",
        "email-not-text",
        "empty-password",
        "unknown-property",
        "nul",
        "long-name",
        "empty-name",
        "blank-name",
    ],
)
def test_a_malformed_sign_in_is_a_422_and_uses_up_no_attempt(sqlite_crm: Api, body: Any) -> None:
    for _ in range(LIMITS.signin_account_attempts + 1):
        response = sqlite_crm.client.post(TOKENS, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"]
    assert sign_in_as(sqlite_crm.client, ANN, ANN_PASSWORD).status_code == 201


@pytest.mark.parametrize("field", ["email", "password"])
def test_text_that_is_not_utf8_is_refused_and_uses_up_no_attempt(
    sqlite_crm: Api, field: str
) -> None:
    body = {"email": ANN, "password": ANN_PASSWORD, field: "ann\ud800"}
    for _ in range(LIMITS.signin_account_attempts + 1):
        # Escaped, as a client would have to send a lone surrogate. Refused as a 422 here, or
        # as a 400 wherever bodies come to be read once for every endpoint: a client error
        # either way, never a 500 and never an attempt.
        response = sqlite_crm.client.post(
            TOKENS, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), response.text
    assert sign_in_as(sqlite_crm.client, ANN, ANN_PASSWORD).status_code == 201


# ---- rate limits -----------------------------------------------------------------------------


def test_an_account_is_refused_after_its_attempts_even_with_the_right_password(
    crm: Api,
) -> None:
    for _ in range(LIMITS.signin_account_attempts):
        assert sign_in_as(crm.client, ANN, "wrong-password").status_code == 401
    limited = sign_in_as(crm.client, ANN, ANN_PASSWORD)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= LIMITS.signin_window
    assert limited.json()["retry_after"] == retry_after
    # From anywhere: the account is what is limited.
    elsewhere = client_at(crm, "198.51.100.9")
    assert sign_in_as(elsewhere, ANN, ANN_PASSWORD).status_code == 429
    # Other accounts, from the same address, are not.
    assert sign_in_as(crm.client, BOB, BOB_PASSWORD).status_code == 201


def test_an_address_is_refused_after_its_attempts_over_many_accounts(sqlite_crm: Api) -> None:
    there = client_at(sqlite_crm, "203.0.113.5")
    emails = [f"guess{n}@example.com" for n in range(LIMITS.signin_address_attempts)]
    for email in emails:  # one attempt each: no account reaches its own limit
        assert sign_in_as(there, email, "guess").status_code == 401
    limited = sign_in_as(there, ANN, ANN_PASSWORD)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= LIMITS.signin_window
    # Another address is not limited.
    assert sign_in_as(client_at(sqlite_crm, "198.51.100.9"), ANN, ANN_PASSWORD).status_code == 201


def test_an_ipv6_client_is_limited_per_64_block(sqlite_crm: Api) -> None:
    for n in range(LIMITS.signin_address_attempts):
        client = client_at(sqlite_crm, f"2001:db8:7:7::{n + 1:x}")
        assert sign_in_as(client, f"guess{n}@example.com", "guess").status_code == 401
    same_block = client_at(sqlite_crm, "2001:db8:7:7:ffff::1")
    assert sign_in_as(same_block, ANN, ANN_PASSWORD).status_code == 429
    other_block = client_at(sqlite_crm, "2001:db8:7:8::1")
    assert sign_in_as(other_block, ANN, ANN_PASSWORD).status_code == 201


def test_a_successful_sign_in_clears_the_accounts_attempts(crm: Api) -> None:
    for _ in range(2):
        for _ in range(LIMITS.signin_account_attempts - 1):
            assert sign_in_as(crm.client, ANN, "wrong-password").status_code == 401
        assert sign_in_as(crm.client, ANN, ANN_PASSWORD).status_code == 201


def test_successful_sign_ins_use_up_no_attempts_of_the_address(sqlite_crm: Api) -> None:
    there = client_at(sqlite_crm, "203.0.113.77")
    for _ in range(LIMITS.signin_address_attempts + 1):
        assert sign_in_as(there, ANN, ANN_PASSWORD).status_code == 201


def test_with_redis_two_app_processes_share_the_limits(
    sqlite_url: str, redis_server: RedisServer
) -> None:
    """Two apps over one database, each with its own limiter object as separate processes
    would have: Redis holds the counts. (A fresh email and address: other tests count in the
    same Redis.)"""
    settings = Settings(
        redis_url=redis_server.url, signin_account_attempts=2, signin_address_attempts=50
    )
    first = start_api(sqlite_url, settings)
    second_app = build_app(replace(settings, database_url=sqlite_url))
    assert second_app.state.runtime.limiter is not first.client.app.state.runtime.limiter
    email = f"r{secrets.token_hex(4)}@example.com"
    with writing(first.engine) as conn:
        create_user(conn, email=email, password_hash=password_hash(ANN_PASSWORD))
    one = client_at(first, f"192.0.2.{secrets.randbelow(250) + 1}")
    other = TestClient(second_app, client=("198.51.100.1", 1), raise_server_exceptions=False)
    for _ in range(2):
        assert sign_in_as(one, email, "wrong-password").status_code == 401
    assert sign_in_as(other, email, ANN_PASSWORD).status_code == 429
    assert sign_in_as(one, email, ANN_PASSWORD).status_code == 429
    second_app.state.engine.dispose()
    first.engine.dispose()


# ---- listing ---------------------------------------------------------------------------------


def test_my_tokens_are_listed_newest_first_without_their_secrets(crm: Api) -> None:
    laptop = token_of(crm.client, ANN, ANN_PASSWORD, "laptop")
    phone = token_of(crm.client, ANN, ANN_PASSWORD, "phone")
    listed = crm.client.get(TOKENS, headers=bearer(phone))
    assert listed.status_code == 200
    data = listed.json()["data"]
    assert [t["name"] for t in data] == ["phone", "laptop"]
    for entry in data:
        assert set(entry) == {"id", "user", "name", "created_at", "revoked_at"}
        assert entry["revoked_at"] is None
    with reading(crm.engine) as conn:
        hashes = set(conn.execute(select(api_tokens.c.token_hash)).scalars())
    text = listed.text
    assert laptop not in text and phone not in text
    assert not any(h in text for h in hashes)
    # The admin's own list has only the admin's token.
    admin = crm.get(TOKENS).json()["data"]
    assert len(admin) == 1 and {t["user"] for t in admin} != {data[0]["user"]}


def test_an_admin_lists_another_users_tokens(crm: Api) -> None:
    token_of(crm.client, ANN, ANN_PASSWORD, "laptop")
    ann = token_of(crm.client, ANN, ANN_PASSWORD, "phone")
    ann_id = crm.client.get("/api/v1/me", headers=bearer(ann)).json()["id"]
    listed = crm.get(TOKENS, params={"user": ann_id})
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()["data"]] == ["phone", "laptop"]
    assert crm.get(TOKENS, params={"user": "01NOSUCHUSER0000000000000"}).status_code == 404
    assert crm.get(TOKENS, params={"user": "x\x00"}).status_code == 404


def test_a_non_admin_may_not_list_another_users_tokens(crm: Api) -> None:
    ann = token_of(crm.client, ANN, ANN_PASSWORD)
    bob = token_of(crm.client, BOB, BOB_PASSWORD)
    ann_id = crm.client.get("/api/v1/me", headers=bearer(ann)).json()["id"]
    refused = crm.client.get(TOKENS, params={"user": ann_id}, headers=bearer(bob))
    assert refused.status_code == 403
    own = crm.client.get(TOKENS, params={"user": ann_id}, headers=bearer(ann))
    assert own.status_code == 200 and len(own.json()["data"]) == 1


def test_listing_needs_a_token(crm: Api) -> None:
    assert crm.client.get(TOKENS).status_code == 401


# ---- revoking --------------------------------------------------------------------------------


def _id_of(api: Api, token: str, name: str) -> str:
    data = api.client.get(TOKENS, headers=bearer(token)).json()["data"]
    return next(t["id"] for t in data if t["name"] == name)


def test_a_user_revokes_their_own_token_and_it_stops_working_at_once(crm: Api) -> None:
    laptop = token_of(crm.client, ANN, ANN_PASSWORD, "laptop")
    phone = token_of(crm.client, ANN, ANN_PASSWORD, "phone")
    laptop_id = _id_of(crm, phone, "laptop")
    assert crm.client.delete(f"{TOKENS}/{laptop_id}", headers=bearer(phone)).status_code == 204
    assert crm.client.get("/api/v1/me", headers=bearer(laptop)).status_code == 401
    assert crm.client.get("/api/v1/me", headers=bearer(phone)).status_code == 200
    listed = {t["name"]: t for t in crm.client.get(TOKENS, headers=bearer(phone)).json()["data"]}
    assert listed["laptop"]["revoked_at"] is not None and listed["phone"]["revoked_at"] is None
    # Again: nothing more to do, still 204, and the time of revocation stays.
    assert crm.client.delete(f"{TOKENS}/{laptop_id}", headers=bearer(phone)).status_code == 204
    again = {t["name"]: t for t in crm.client.get(TOKENS, headers=bearer(phone)).json()["data"]}
    assert again["laptop"]["revoked_at"] == listed["laptop"]["revoked_at"]


def test_someone_elses_token_is_unknown_to_a_non_admin_and_keeps_working(crm: Api) -> None:
    ann = token_of(crm.client, ANN, ANN_PASSWORD, "ann")
    bob = token_of(crm.client, BOB, BOB_PASSWORD, "bob")
    ann_id = _id_of(crm, ann, "ann")
    theirs = crm.client.delete(f"{TOKENS}/{ann_id}", headers=bearer(bob))
    unknown = crm.client.delete(f"{TOKENS}/01NOSUCHTOKEN000000000000", headers=bearer(bob))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["title"] == unknown.json()["title"]
    assert crm.client.get("/api/v1/me", headers=bearer(ann)).status_code == 200


def test_an_admin_revokes_anyones_token(crm: Api) -> None:
    ann = token_of(crm.client, ANN, ANN_PASSWORD, "ann")
    ann_id = _id_of(crm, ann, "ann")
    assert crm.delete(f"{TOKENS}/{ann_id}").status_code == 204
    assert crm.client.get("/api/v1/me", headers=bearer(ann)).status_code == 401
    assert crm.delete(f"{TOKENS}/01NOSUCHTOKEN000000000000").status_code == 404


def test_a_user_may_revoke_the_token_they_call_with(crm: Api) -> None:
    ann = token_of(crm.client, ANN, ANN_PASSWORD, "ann")
    ann_id = _id_of(crm, ann, "ann")
    assert crm.client.delete(f"{TOKENS}/{ann_id}", headers=bearer(ann)).status_code == 204
    assert crm.client.get(TOKENS, headers=bearer(ann)).status_code == 401


# ---- the document ----------------------------------------------------------------------------


def test_token_answers_match_the_published_document(crm: Api) -> None:
    document = crm.get("/api/v1/openapi.json").json()
    components = document["components"]

    def check(schema: dict[str, Any], value: Any) -> None:
        Draft202012Validator({**schema, "components": components}).validate(value)

    post = document["paths"][TOKENS]["post"]
    assert post["security"] == []
    assert "Retry-After" in post["responses"]["429"]["headers"]
    check(
        post["requestBody"]["content"]["application/json"]["schema"],
        {"email": ANN, "password": "p"},
    )
    created = sign_in_as(crm.client, ANN, ANN_PASSWORD, name="doc")
    check(post["responses"]["201"]["content"]["application/json"]["schema"], created.json())
    listing = document["paths"][TOKENS]["get"]["responses"]["200"]
    listed = crm.client.get(TOKENS, headers=bearer(created.json()["token"]))
    check(listing["content"]["application/json"]["schema"], listed.json())
    items = listing["content"]["application/json"]["schema"]["properties"]["data"]["items"]
    assert items == {"$ref": "#/components/schemas/Token"}
    assert "delete" in document["paths"][f"{TOKENS}/{{id}}"]


def test_the_admin_of_a_fresh_install_signs_in_with_the_admin_password(crm: Api) -> None:
    assert sign_in_as(crm.client, ADMIN_EMAIL, "admin-password").status_code == 201


@pytest.mark.slow
def test_generated_token_requests_get_no_server_error_and_answers_as_documented(
    sqlite_crm: Api,
) -> None:
    """A bounded schemathesis run over the three token operations, signed in as the admin: valid
    requests and requests off the document in one place. (The ids it makes up match no token,
    so the admin's stays valid.)"""
    document = sqlite_crm.get("/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document).include(path_regex=r"^/api/v1/tokens")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 3
    found: list[str] = []
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE),
                operation.as_strategy(GenerationMode.NEGATIVE),
            )
        )
        def exercise(case: Any) -> None:
            request = case.as_transport_kwargs(base_url=str(sqlite_crm.client.base_url))
            headers = {**request.get("headers", {}), **sqlite_crm.headers()}
            response = sqlite_crm.client.request(
                request["method"],
                request["url"],
                params=request.get("params"),
                headers={k: v.encode("latin-1") for k, v in headers.items()},
                json=request.get("json"),
                content=request.get("data"),
            )
            case.validate_response(response, checks=CHECKS, headers=sqlite_crm.headers())

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as failure:
            found.append(f"{operation.label}:\n{failure}")
    assert not found, "\n\n".join(found)
    assert sqlite_crm.get("/api/v1/me").status_code == 200


def test_a_user_made_with_the_hash_of_a_password_signs_in_with_that_password(
    sqlite_api: Api,
) -> None:
    """Users moved from another installation keep their passwords: create_user takes the
    argon2 hash instead of the password, and refuses anything that is not one."""
    with writing(sqlite_api.engine) as conn:
        create_user(conn, email="moved@example.com", password_hash=password_hash("moved-password"))
        for bad in (
            {"password_hash": "$2b$12$notargon2atall"},
            {"password_hash": "not a hash"},
            {"password_hash": password_hash("moved-password"), "password": "moved-password"},
        ):
            with pytest.raises(Unprocessable) as refused:
                create_user(conn, email=f"{secrets.token_hex(4)}@example.com", **bad)
            assert [e.field for e in refused.value.errors] == ["password_hash"]
    assert sign_in_as(sqlite_api.client, "moved@example.com", "moved-password").status_code == 201
    assert sign_in_as(sqlite_api.client, "moved@example.com", "other-pass").status_code == 401
