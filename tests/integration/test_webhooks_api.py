"""The webhooks API on SQLite and PostgreSQL: admins manage subscriptions, every invalid one is
refused with the field that is wrong, secrets are shown only when made, deliveries are listed
newest first and can be replayed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ACCOUNT, Api, start_api
from webhook_receiver import Receiver, receiving

from metacrm.platform.tasks import InProcessQueue
from metacrm.runtime.startup import build_registry
from metacrm.runtime.webhooks import DeliveryPolicy

V1 = "/api/v1"
HOOKS = f"{V1}/webhooks"
RECORDS = f"{V1}/records"
URL = "https://hooks.example.com/in"
DROP = object()  # leave the property out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


@pytest.fixture
def accounts(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    return api


@pytest.fixture(scope="module")
def validation_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app for the many refused bodies: checking a body does not depend on the database,
    and a refused one leaves nothing behind for the next."""
    instance = start_api(f"sqlite:///{tmp_path_factory.mktemp('hooks')}/validation.db")
    with instance.client:
        instance.make_entity(ACCOUNT)
        yield instance
    instance.engine.dispose()


def drain(api: Api) -> None:
    queue = api.services.queue
    assert isinstance(queue, InProcessQueue)
    assert queue.drain(30), "background work did not finish"


def make_hook(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post(HOOKS, {"name": "crm sync", "url": URL, "events": ["*"], **body})
    assert response.status_code == 201, response.text
    return response.json()


def field_errors(response: Any) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


def test_an_admin_creates_reads_changes_and_deletes_a_webhook(accounts: Api) -> None:
    api = accounts
    created = api.post(
        HOOKS,
        {
            "name": "energy deals",
            "url": URL,
            "entity": "account",
            "events": ["record.created", "record.updated"],
            "condition": 'industry == "energy"',
        },
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
    assert created.headers["location"] == f"{HOOKS}/{hook['id']}"
    assert hook["active"] is True and hook["created_by"]
    shown = api.get(f"{HOOKS}/{hook['id']}").json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in hook.items() if k != "secret"}
    assert [h["id"] for h in api.get(HOOKS).json()["data"]] == [hook["id"]]
    assert all("secret" not in h for h in api.get(HOOKS).json()["data"])

    changed = api.patch(f"{HOOKS}/{hook['id']}", {"active": False, "name": "paused"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["active"] is False and changed.json()["name"] == "paused"
    assert changed.json()["condition"] == 'industry == "energy"'

    assert api.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert api.get(f"{HOOKS}/{hook['id']}").status_code == 404
    assert api.delete(f"{HOOKS}/{hook['id']}").status_code == 404
    assert api.get(HOOKS).json()["data"] == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        pytest.param({"name": DROP}, {("name", "required")}, id="no name"),
        pytest.param({"url": DROP}, {("url", "required")}, id="no url"),
        pytest.param({"events": DROP}, {("events", "required")}, id="no events"),
        pytest.param({"events": []}, {("events", "required")}, id="no event types"),
        pytest.param({"url": "ftp://example.com/x"}, {("url", "format")}, id="ftp url"),
        pytest.param({"url": "http:///path"}, {("url", "format")}, id="url without host"),
        pytest.param({"url": "http://x:99999/"}, {("url", "format")}, id="bad port"),
        pytest.param({"url": "http://x/a b"}, {("url", "format")}, id="space in url"),
        pytest.param({"url": 5}, {("url", "type")}, id="url not text"),
        pytest.param({"name": "  "}, {("name", "type")}, id="blank name"),
        pytest.param({"name": "n" * 201}, {("name", "too_long")}, id="long name"),
        pytest.param({"entity": "planet"}, {("entity", "unknown_entity")}, id="unknown entity"),
        pytest.param({"events": ["record.exploded"]}, {("events", "unknown_event")}, id="event"),
        pytest.param({"events": "record.created"}, {("events", "type")}, id="events not list"),
        pytest.param({"events": ["*", "*"]}, {("events", "duplicate")}, id="duplicate event"),
        pytest.param({"active": "yes"}, {("active", "type")}, id="active not bool"),
        pytest.param({"secret": "mine"}, {("secret", "unknown_field")}, id="secret given"),
        pytest.param(
            {"condition": 'industry == "energy"'},
            {("condition", "needs_entity")},
            id="condition without entity",
        ),
        pytest.param(
            {"entity": "account", "condition": "industry =="},
            {("condition", "expression")},
            id="condition syntax",
        ),
        pytest.param(
            {"entity": "account", "condition": "revenue > 5"},
            {("condition", "expression")},
            id="condition unknown field",
        ),
        pytest.param(
            {"entity": "account", "condition": "name"},
            {("condition", "expression")},
            id="condition not boolean",
        ),
        pytest.param(
            {"entity": "account", "condition": 'changed("name")'},
            {("condition", "expression")},
            id="condition needs a change",
        ),
        pytest.param(
            {"entity": "account", "condition": "owner == $user.id"},
            {("condition", "not_sql")},
            id="condition needs a user",
        ),
        pytest.param(
            {"url": "mailto:x", "entity": "planet", "events": ["nope"]},
            {("url", "format"), ("entity", "unknown_entity"), ("events", "unknown_event")},
            id="every error at once",
        ),
    ],
)
def test_an_invalid_webhook_is_refused_with_the_field_that_is_wrong(
    validation_api: Api, changes: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    api = validation_api
    full = {"name": "x", "url": URL, "events": ["*"], **changes}
    response = api.post(HOOKS, {k: v for k, v in full.items() if v is not DROP})
    assert field_errors(response) == expected
    assert api.get(HOOKS).json()["data"] == []


def test_a_body_that_is_not_an_object_is_refused(accounts: Api) -> None:
    assert accounts.post(HOOKS, ["name"]).status_code == 422
    hook = make_hook(accounts)
    assert accounts.patch(f"{HOOKS}/{hook['id']}", "active").status_code == 422


def test_a_change_is_checked_as_the_whole_webhook_and_a_refused_one_changes_nothing(
    accounts: Api,
) -> None:
    api = accounts
    hook = make_hook(api, entity="account", condition='industry == "energy"')
    # Without an entity the condition has nothing to check against.
    refused = api.patch(f"{HOOKS}/{hook['id']}", {"entity": None, "name": "renamed"})
    assert field_errors(refused) == {("condition", "needs_entity")}
    assert api.get(f"{HOOKS}/{hook['id']}").json()["name"] == "crm sync"
    both = api.patch(f"{HOOKS}/{hook['id']}", {"entity": None, "condition": None})
    assert both.status_code == 200, both.text
    assert (both.json()["entity"], both.json()["condition"]) == (None, None)
    assert api.patch(f"{HOOKS}/NOPE", {"name": "x"}).status_code == 404


def test_only_admins_see_or_manage_webhooks(accounts: Api) -> None:
    api = accounts
    hook = make_hook(api)
    user = api.new_user("rep@example.com")
    as_user = {"headers": {"Authorization": f"Bearer {user}"}}
    assert api.client.get(HOOKS, **as_user).status_code == 403
    assert api.client.get(f"{HOOKS}/{hook['id']}", **as_user).status_code == 403
    assert api.client.post(HOOKS, json={"name": "x"}, **as_user).status_code == 403
    assert api.client.post(f"{HOOKS}/{hook['id']}/secret", **as_user).status_code == 403
    assert api.client.delete(f"{HOOKS}/{hook['id']}", **as_user).status_code == 403
    assert api.client.get(HOOKS).status_code == 401
    assert api.get(f"{HOOKS}/{hook['id']}").status_code == 200


def test_a_rotated_secret_signs_every_later_delivery(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    hook = make_hook(api, url=receiver.url)
    rotated = api.post(f"{HOOKS}/{hook['id']}/secret")
    assert rotated.status_code == 200, rotated.text
    secret = rotated.json()["secret"]
    assert secret != hook["secret"] and secret.startswith("whsec_")
    assert "secret" not in api.get(f"{HOOKS}/{hook['id']}").json()
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    drain(api)
    [request] = receiver.snapshot()
    assert request.signed_by(secret)
    assert not request.signed_by(hook["secret"])
    assert api.post(f"{HOOKS}/NOPE/secret").status_code == 404


def accounts_with(make_api: Any, policy: DeliveryPolicy) -> Api:
    api = make_api(registry=build_registry(delivery=policy))
    api.make_entity(ACCOUNT)
    return api


def test_deliveries_are_listed_newest_first_filtered_and_limited(
    make_api: Any, receiver: Receiver
) -> None:
    api = accounts_with(make_api, DeliveryPolicy(max_attempts=1))
    receiver.statuses.extend([200, 410, 200])
    hook = make_hook(api, url=receiver.url)
    other = make_hook(api, url=f"{receiver.url}?other", entity="account", active=False)
    names = ["first", "second", "third"]
    for name in names:
        api.post(f"{RECORDS}/account", {"name": name})
        drain(api)
    base = f"{HOOKS}/{hook['id']}/deliveries"
    listed = api.get(base).json()
    assert listed["total"] == 3
    assert [d["status"] for d in listed["data"]] == ["delivered", "failed", "delivered"]
    ids = {r.json["id"]: r.json["data"]["record"]["name"] for r in receiver.snapshot()}
    assert [ids[d["id"]] for d in listed["data"]] == names[::-1]
    failed = listed["data"][1]
    assert failed["response_code"] == 410 and failed["attempts"] == 1
    assert failed["last_error"].startswith("HTTP 410") and failed["delivered_at"] is None
    assert set(failed) == {
        "id",
        "webhook_id",
        "event_type",
        "event_id",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }
    assert all(d["created_at"].endswith("Z") for d in listed["data"])
    only_failed = api.get(base, params={"status": "failed"}).json()
    assert [d["id"] for d in only_failed["data"]] == [failed["id"]]
    assert only_failed["total"] == 1
    assert len(api.get(base, params={"limit": "2"}).json()["data"]) == 2
    assert api.get(base, params={"status": "lost"}).status_code == 400
    assert api.get(base, params={"limit": "0"}).status_code == 400
    assert api.get(f"{HOOKS}/{other['id']}/deliveries").json() == {"data": [], "total": 0}
    assert api.get(f"{HOOKS}/NOPE/deliveries").status_code == 404


def test_a_delivered_or_failed_delivery_can_be_replayed(make_api: Any, receiver: Receiver) -> None:
    policy = DeliveryPolicy(retry_base_seconds=0.001)
    api = accounts_with(make_api, policy)
    receiver.statuses.extend([500] * policy.max_attempts)
    hook = make_hook(api, url=receiver.url)
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    drain(api)
    base = f"{HOOKS}/{hook['id']}/deliveries"
    [failed] = api.get(base).json()["data"]
    assert (failed["status"], failed["attempts"]) == ("failed", policy.max_attempts)

    replayed = api.post(f"{base}/{failed['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
    drain(api)
    [delivered] = api.get(base).json()["data"]
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 1)
    assert delivered["response_code"] == 200 and delivered["last_error"] is None

    assert api.post(f"{base}/{failed['id']}/replay").status_code == 202
    drain(api)
    [again] = api.get(base).json()["data"]
    assert (again["status"], again["attempts"]) == ("delivered", 1)
    got = receiver.snapshot()
    assert len(got) == policy.max_attempts + 2
    assert {r.json["id"] for r in got} == {failed["id"]}
    assert all(r.signed_by(hook["secret"]) for r in got)


def test_replaying_a_delivery_of_another_webhook_or_none_is_not_found(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    hook = make_hook(api, url=receiver.url)
    other = make_hook(api, url=receiver.url, entity="account", events=["record.deleted"])
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    drain(api)
    [delivery] = api.get(f"{HOOKS}/{hook['id']}/deliveries").json()["data"]
    assert api.post(f"{HOOKS}/{other['id']}/deliveries/{delivery['id']}/replay").status_code == 404
    assert api.post(f"{HOOKS}/{hook['id']}/deliveries/NOPE/replay").status_code == 404
    drain(api)
    assert len(receiver.snapshot()) == 1


def test_deleting_a_webhook_deletes_its_deliveries(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    hook = make_hook(api, url=receiver.url)
    kept = make_hook(api, url=receiver.url)
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    drain(api)
    assert api.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert api.get(f"{HOOKS}/{hook['id']}/deliveries").status_code == 404
    assert api.get(f"{HOOKS}/{kept['id']}/deliveries").json()["total"] == 1
