"""The inbox on SQLite and PostgreSQL: each user sees and marks only their own notifications,
and a record created for or handed to someone else lands in their inbox."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ACCOUNT, Api

from metacrm.platform.db import writing
from metacrm.platform.tasks import InProcessQueue
from metacrm.platform.users import authenticate
from metacrm.runtime.notifications import notify

V1 = "/api/v1"
INBOX = f"{V1}/notifications"
RECORDS = f"{V1}/records"


def drain(api: Api) -> None:
    queue = api.services.queue
    assert isinstance(queue, InProcessQueue)
    assert queue.drain(30), "background work did not finish"


def as_user(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def user_id(api: Api, token: str) -> str:
    with api.engine.connect() as conn:
        session = authenticate(conn, token)
    assert session is not None
    return session.user.id


def send(api: Api, user: str, *titles: str) -> list[str]:
    ids = []
    for title in titles:  # one transaction each, so each has its own time
        with writing(api.engine) as conn:
            ids += notify(conn, [user], "test", title, f"about {title}")
    return ids


def inbox(api: Api, token: str, **params: str) -> dict[str, Any]:
    response = api.client.get(INBOX, params=params, **as_user(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_each_user_sees_only_their_own_notifications_newest_first(api: Api) -> None:
    ann, bob = api.new_user("ann@example.com"), api.new_user("bob@example.com")
    send(api, user_id(api, ann), "first", "second", "third")
    send(api, user_id(api, bob), "for bob")
    mine = inbox(api, ann)
    assert [n["title"] for n in mine["data"]] == ["third", "second", "first"]
    assert mine["unread"] == 3
    assert set(mine["data"][0]) == {
        "id",
        "kind",
        "title",
        "body",
        "entity",
        "record_id",
        "created_at",
        "read_at",
    }
    assert mine["data"][0]["body"] == "about third" and mine["data"][0]["read_at"] is None
    assert mine["data"][0]["created_at"].endswith("Z")  # times are written as everywhere else
    assert [n["title"] for n in inbox(api, bob)["data"]] == ["for bob"]
    assert [n["title"] for n in inbox(api, ann, limit="2")["data"]] == ["third", "second"]
    assert inbox(api, ann, limit="2")["unread"] == 3
    assert inbox(api, api.token) == {"data": [], "unread": 0}


def test_marking_read_changes_only_the_callers_notification(api: Api) -> None:
    ann, bob = api.new_user("ann@example.com"), api.new_user("bob@example.com")
    first, second = send(api, user_id(api, ann), "first", "second")
    [bobs] = send(api, user_id(api, bob), "for bob")

    read = api.client.post(f"{INBOX}/{first}/read", **as_user(ann))
    assert read.status_code == 200, read.text
    assert read.json()["id"] == first and read.json()["read_at"]
    again = api.client.post(f"{INBOX}/{first}/read", **as_user(ann))
    assert again.json()["read_at"] == read.json()["read_at"]  # the first reading is kept

    assert api.client.post(f"{INBOX}/{bobs}/read", **as_user(ann)).status_code == 404
    assert api.client.post(f"{INBOX}/NOPE/read", **as_user(ann)).status_code == 404
    assert inbox(api, bob)["unread"] == 1
    mine = inbox(api, ann)
    assert mine["unread"] == 1
    assert [n["id"] for n in inbox(api, ann, unread="true")["data"]] == [second]
    assert len(inbox(api, ann, unread="false")["data"]) == 2


def test_read_all_marks_every_unread_notification_of_the_caller(api: Api) -> None:
    ann, bob = api.new_user("ann@example.com"), api.new_user("bob@example.com")
    first, *_ = send(api, user_id(api, ann), "a", "b", "c")
    send(api, user_id(api, bob), "for bob")
    api.client.post(f"{INBOX}/{first}/read", **as_user(ann))
    marked = api.client.post(f"{INBOX}/read-all", **as_user(ann))
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"marked": 2}
    assert inbox(api, ann)["unread"] == 0
    assert inbox(api, ann, unread="true")["data"] == []
    assert api.client.post(f"{INBOX}/read-all", **as_user(ann)).json() == {"marked": 0}
    assert inbox(api, bob)["unread"] == 1


@pytest.mark.parametrize(
    "params", [{"unread": "maybe"}, {"limit": "0"}, {"limit": "many"}, {"limit": "100000"}]
)
def test_bad_inbox_parameters_are_refused(api: Api, params: dict[str, str]) -> None:
    assert api.get(INBOX, params=params).status_code == 400


def test_the_inbox_needs_a_signed_in_user(api: Api) -> None:
    assert api.client.get(INBOX).status_code == 401
    assert api.client.post(f"{INBOX}/read-all").status_code == 401
    assert api.client.get(INBOX, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_record_created_for_someone_else_lands_in_their_inbox(api: Api) -> None:
    api.make_entity(ACCOUNT)
    rep = api.new_user("rep@example.com")
    rep_id = user_id(api, rep)
    created = api.post(f"{RECORDS}/account", {"name": "Acme", "owner": rep_id})
    assert created.status_code == 201, created.text
    api.post(f"{RECORDS}/account", {"name": "Mine"})  # the admin's own: no notification
    drain(api)
    [assigned] = inbox(api, rep)["data"]
    assert assigned["kind"] == "record.assigned"
    assert (assigned["entity"], assigned["record_id"]) == ("account", created.json()["id"])
    assert "Acme" in assigned["title"] and "Account" in assigned["title"]
    assert inbox(api, api.token)["data"] == []


def test_a_record_handed_to_someone_else_lands_in_their_inbox_but_not_the_reverse(
    api: Api,
) -> None:
    api.make_entity(ACCOUNT)
    rep = api.new_user("rep@example.com")
    rep_id = user_id(api, rep)
    record = api.post(f"{RECORDS}/account", {"name": "Acme"}).json()
    drain(api)
    assert inbox(api, rep)["data"] == []
    url = f"{RECORDS}/account/{record['id']}"
    renamed = api.patch(url, {"name": "Acme Corp"})
    assert renamed.status_code == 200, renamed.text
    drain(api)
    assert inbox(api, rep)["data"] == []  # a change that keeps the owner tells no one
    handed = api.patch(url, {"owner": rep_id})
    assert handed.status_code == 200, handed.text
    drain(api)
    [assigned] = inbox(api, rep)["data"]
    assert assigned["record_id"] == record["id"] and "Acme Corp" in assigned["title"]
    assert inbox(api, api.token)["data"] == []
