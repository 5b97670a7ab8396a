"""Every record write publishes its event in the same transaction, carrying the record as it
is now stored — the same JSON a GET returns — and what changed."""

from __future__ import annotations

from typing import Any

from conftest import ACCOUNT, OPPORTUNITY, Api
from sqlalchemy import select

from metacrm.platform.db import reading
from metacrm.platform.systables import events

RECORDS = "/api/v1/records/opportunity"


def _events(api: Api) -> list[Any]:
    with reading(api.engine) as conn:
        return list(
            conn.execute(
                select(events.c.type, events.c.record_id, events.c.actor, events.c.payload)
                .where(events.c.entity == "opportunity")
                .order_by(events.c.id)
            )
        )


def _as_read(api: Api, record_id: str) -> dict[str, Any]:
    response = api.get(f"{RECORDS}/{record_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_each_write_publishes_the_record_as_a_get_shows_it(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    me = api.get("/api/v1/me").json()["id"]
    created = api.post(
        RECORDS,
        {
            "name": "Acme",
            "amount": "1200.50",
            "close_date": "2026-12-31",
            "tags": ["hot", "vip"],
        },
    ).json()
    [event] = _events(api)
    assert (event.type, event.record_id, event.actor) == ("record.created", created["id"], me)
    assert event.payload["record"] == _as_read(api, created["id"])
    assert event.payload["changes"]["amount"] == [None, "1200.50"]

    changed = api.patch(f"{RECORDS}/{created['id']}", {"amount": 99, "closed": True})
    assert changed.status_code == 200, changed.text
    update = _events(api)[-1]
    assert update.type == "record.updated"
    assert update.payload["record"] == _as_read(api, created["id"])
    assert update.payload["record"]["version"] == 2
    history = api.get(f"{RECORDS}/{created['id']}/history").json()["data"]
    assert update.payload["changes"] == {
        name: [change["old"], change["new"]] for name, change in history[0]["changes"].items()
    }
    assert set(update.payload["changes"]) == {"amount", "closed"}

    assert api.delete(f"{RECORDS}/{created['id']}").status_code == 204
    assert api.post(f"{RECORDS}/{created['id']}/restore").status_code == 200
    kinds = [e.type for e in _events(api)]
    assert kinds == ["record.created", "record.updated", "record.deleted", "record.restored"]
    assert _events(api)[-1].payload["record"] == _as_read(api, created["id"])


def test_a_refused_write_publishes_nothing(api: Api) -> None:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    refused = api.post(RECORDS, {"name": "Acme", "amount": -1})
    assert refused.status_code == 422
    created = api.post(RECORDS, {"name": "Acme"}).json()
    stale = api.patch(f"{RECORDS}/{created['id']}", {"amount": 1}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert [e.type for e in _events(api)] == ["record.created"]
