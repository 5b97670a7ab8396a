"""Webhooks delivered by the embedded (in-process) task queue on SQLite and PostgreSQL: signed
deliveries for record changes, filtering, retries with backoff, giving up, exactly one delivery
per event, the sweep that recovers lost hand-overs, and nothing for rolled-back changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api
from sqlalchemy import Engine, func, select, update
from webhook_receiver import Receiver, receiving

from metacrm.platform import events as event_bus
from metacrm.platform.clock import as_utc, utcnow
from metacrm.platform.db import make_engine, writing
from metacrm.platform.events import publish
from metacrm.platform.settings import Settings
from metacrm.platform.systables import events, webhook_deliveries
from metacrm.platform.tasks import InProcessQueue, RetryLater, TaskContext, queue_for
from metacrm.runtime import event_dispatch, webhooks
from metacrm.runtime.event_dispatch import dispatch_one, sweep

V1 = "/api/v1"
HOOKS = f"{V1}/webhooks"
RECORDS = f"{V1}/records"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


@pytest.fixture
def accounts(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    return api


@pytest.fixture
def bare_engine(api: Api) -> Iterator[Engine]:
    """The same database through an engine no task queue serves: what it publishes is committed
    but never handed over, as when a process dies between commit and enqueue."""
    engine = make_engine(api.url)
    yield engine
    engine.dispose()


def drain(api: Api) -> None:
    queue = queue_for(api.engine)
    assert isinstance(queue, InProcessQueue)
    assert queue.drain(30), "background work did not finish"


def context(api: Api, clock: Any = utcnow) -> TaskContext:
    queue = queue_for(api.engine)
    assert queue is not None
    return TaskContext(api.engine, Settings(database_url=api.url), queue, clock)


def make_hook(api: Api, url: str, **body: Any) -> dict[str, Any]:
    response = api.post(HOOKS, {"name": "test hook", "url": url, "events": ["*"], **body})
    assert response.status_code == 201, response.text
    return response.json()


def create(api: Api, entity: str, **values: Any) -> dict[str, Any]:
    response = api.post(f"{RECORDS}/{entity}", values)
    assert response.status_code == 201, response.text
    return response.json()


def delivery_rows(api: Api, **where: Any) -> list[Any]:
    query = select(webhook_deliveries).order_by(webhook_deliveries.c.created_at)
    for column, value in where.items():
        query = query.where(webhook_deliveries.c[column] == value)
    with api.engine.connect() as conn:
        return list(conn.execute(query))


def publish_unannounced(engine: Engine, record_id: str = "R1") -> int:
    """An event committed but never dispatched: no consumer took it in its transaction and its
    hand-over to the queue was lost (what the dispatch task and the sweep exist for)."""
    with writing(engine) as conn:
        return int(
            conn.execute(
                events.insert().values(
                    type="record.created",
                    entity="account",
                    record_id=record_id,
                    payload={"entity": "account", "id": record_id, "record": {}, "changes": {}},
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]
        )


def dispatched_at(api: Api, event_id: int) -> datetime | None:
    with api.engine.connect() as conn:
        return conn.execute(
            select(events.c.dispatched_at).where(events.c.id == event_id)
        ).scalar_one()


def test_record_changes_are_delivered_signed_with_the_hooks_secret(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    hook = make_hook(
        api,
        receiver.url,
        entity="account",
        events=["record.created", "record.updated", "record.deleted"],
    )
    record = create(api, "account", name="Acme", industry="retail")
    drain(api)
    changed = api.patch(f"{RECORDS}/account/{record['id']}", {"industry": "energy"})
    assert changed.status_code == 200, changed.text
    drain(api)
    assert api.delete(f"{RECORDS}/account/{record['id']}").status_code == 204
    drain(api)

    got = receiver.snapshot()
    assert [r.json["event"] for r in got] == ["record.created", "record.updated", "record.deleted"]
    for request in got:
        assert request.signed_by(hook["secret"])
        assert not request.signed_by("whsec_someone_else")
        assert request.headers["x-metacrm-event"] == request.json["event"]
        assert request.headers["x-metacrm-delivery"] == request.json["id"]
        assert request.json["data"]["id"] == record["id"]
    assert got[0].json["data"]["record"]["name"] == "Acme"
    assert got[1].json["data"]["changes"]["industry"] == ["retail", "energy"]
    listed = api.get(f"{HOOKS}/{hook['id']}/deliveries").json()["data"]
    assert [d["event_type"] for d in listed] == [
        "record.deleted",
        "record.updated",
        "record.created",
    ]
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in listed)
    assert all(d["response_code"] == 200 and d["delivered_at"] for d in listed)
    assert {d["id"] for d in listed} == {r.json["id"] for r in got}


def test_the_condition_is_checked_in_sql_against_the_record(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    make_hook(api, receiver.url, entity="account", condition='industry == "energy"')
    energy = create(api, "account", name="Power", industry="energy")
    retail = create(api, "account", name="Shop", industry="retail")
    drain(api)
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == [energy["id"]]

    # The condition holds once the record changes to meet it.
    api.patch(f"{RECORDS}/account/{retail['id']}", {"industry": "energy"})
    drain(api)
    got = receiver.snapshot()
    assert [(r.json["event"], r.json["data"]["id"]) for r in got[1:]] == [
        ("record.updated", retail["id"])
    ]
    assert len(delivery_rows(api)) == 2


def test_hooks_get_only_their_entity_and_event_types(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    api.make_entity(OPPORTUNITY)
    make_hook(api, f"{receiver.url}?created", entity="account", events=["record.created"])
    make_hook(api, f"{receiver.url}?all", events=["*"])
    make_hook(api, f"{receiver.url}?opportunity", entity="opportunity")
    make_hook(api, f"{receiver.url}?off", active=False)
    record = create(api, "account", name="Acme")
    drain(api)
    api.patch(f"{RECORDS}/account/{record['id']}", {"name": "Acme 2"})
    drain(api)
    seen = sorted((r.path.split("?")[1], r.json["event"]) for r in receiver.snapshot())
    assert seen == [
        ("all", "record.created"),
        ("all", "record.updated"),
        ("created", "record.created"),
    ]


def test_a_failing_receiver_is_retried_until_it_answers(
    accounts: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = accounts
    monkeypatch.setattr(webhooks, "RETRY_BASE_SECONDS", 0.01)
    receiver.statuses.extend([500, 503])
    hook = make_hook(api, receiver.url)
    create(api, "account", name="Acme")
    drain(api)
    got = receiver.snapshot()
    assert len(got) == 3
    assert len({r.json["id"] for r in got}) == 1  # the same delivery each time
    assert all(r.signed_by(hook["secret"]) for r in got)
    [delivery] = delivery_rows(api)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 3, 200)
    assert delivery.last_error is None


def test_each_retry_waits_twice_as_long_and_the_last_attempt_fails_the_delivery(
    accounts: Api, bare_engine: Engine
) -> None:
    api = accounts
    with receiving([500] * webhooks.MAX_ATTEMPTS) as failing:
        make_hook(api, failing.url)
        event_id = publish_unannounced(bare_engine)
        assert dispatch_one(bare_engine, event_id)  # not enqueued: no queue serves bare_engine
        [delivery] = delivery_rows(api)
        now = utcnow().replace(microsecond=0)
        task = context(api, clock=lambda: now)
        for attempt in range(1, webhooks.MAX_ATTEMPTS):
            with pytest.raises(RetryLater) as retry:
                webhooks.deliver(task, delivery.id)
            wait = webhooks.RETRY_BASE_SECONDS * 2 ** (attempt - 1)
            assert retry.value.delay == wait
            [row] = delivery_rows(api)
            assert (row.status, row.attempts, row.response_code) == ("pending", attempt, 500)
            assert as_utc(row.next_attempt_at) == now + timedelta(seconds=wait)
            assert row.last_error == "HTTP 500: receiver says no"
        webhooks.deliver(task, delivery.id)  # the last attempt: no retry
        [row] = delivery_rows(api)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "failed",
            webhooks.MAX_ATTEMPTS,
            None,
        )
        webhooks.deliver(task, delivery.id)  # a failed delivery is left alone
        assert len(failing.snapshot()) == webhooks.MAX_ATTEMPTS


def test_an_unreachable_receiver_is_an_attempt_with_the_error_recorded(
    accounts: Api, bare_engine: Engine
) -> None:
    api = accounts
    with receiving() as gone:
        url = gone.url
    make_hook(api, url)
    assert dispatch_one(bare_engine, publish_unannounced(bare_engine))
    [delivery] = delivery_rows(api)
    with pytest.raises(RetryLater):
        webhooks.deliver(context(api), delivery.id)
    [row] = delivery_rows(api)
    assert (row.status, row.attempts, row.response_code) == ("pending", 1, None)
    assert row.last_error.startswith("ConnectError")


def test_dispatching_an_event_twice_delivers_it_once(
    accounts: Api, receiver: Receiver, bare_engine: Engine
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(bare_engine)
    assert dispatch_one(api.engine, event_id) is True
    assert dispatch_one(api.engine, event_id) is False
    # Even if the claim were lost, the (webhook, event) key allows one delivery.
    with writing(api.engine) as conn:
        conn.execute(update(events).where(events.c.id == event_id).values(dispatched_at=None))
    assert dispatch_one(api.engine, event_id) is True
    drain(api)
    assert len(delivery_rows(api)) == 1
    assert len(receiver.snapshot()) == 1


def test_concurrent_dispatches_of_one_event_claim_it_once(
    accounts: Api, receiver: Receiver, bare_engine: Engine
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(bare_engine)
    start = threading.Barrier(4)
    results: list[bool] = []

    def race() -> None:
        start.wait(10)
        results.append(dispatch_one(api.engine, event_id))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, False, False, True]
    drain(api)
    assert len(delivery_rows(api)) == 1


def test_the_sweep_dispatches_an_event_whose_hand_over_was_lost(
    accounts: Api, receiver: Receiver, bare_engine: Engine
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(bare_engine, "LOST")
    drain(api)
    assert dispatched_at(api, event_id) is None
    sweep(context(api))  # too fresh: its hand-over may still be on the way
    assert dispatched_at(api, event_id) is None
    later = utcnow() + event_dispatch.STALE_AFTER + timedelta(seconds=1)
    sweep(context(api, clock=lambda: later))
    assert dispatched_at(api, event_id) is not None
    drain(api)
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == ["LOST"]


def test_the_sweep_re_enqueues_a_delivery_whose_message_was_lost(
    accounts: Api, receiver: Receiver, bare_engine: Engine
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    assert dispatch_one(bare_engine, publish_unannounced(bare_engine))
    drain(api)
    sweep(context(api))
    drain(api)
    assert receiver.snapshot() == []
    [pending] = delivery_rows(api, status="pending")
    visibility = timedelta(seconds=Settings().task_visibility_timeout)
    later = utcnow() + event_dispatch.OVERDUE_AFTER + visibility + timedelta(seconds=1)
    sweep(context(api, clock=lambda: later))
    drain(api)
    assert [r.json["id"] for r in receiver.snapshot()] == [pending.id]
    assert [d.status for d in delivery_rows(api)] == ["delivered"]


def test_an_event_that_cannot_be_dispatched_does_not_hold_up_the_sweep(
    accounts: Api, receiver: Receiver, bare_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    poison = publish_unannounced(bare_engine, "POISON")
    fine = publish_unannounced(bare_engine, "FINE")
    real = event_dispatch.create_deliveries

    def create_deliveries(conn: Any, catalog: Any, event: Any, hooks: Any = None) -> list[str]:
        if event.id == poison:
            raise RuntimeError("this event breaks its consumer")
        return real(conn, catalog, event, hooks)

    monkeypatch.setattr(event_dispatch, "create_deliveries", create_deliveries)
    later = utcnow() + event_dispatch.STALE_AFTER + timedelta(seconds=1)
    sweep(context(api, clock=lambda: later))
    drain(api)
    assert dispatched_at(api, poison) is None  # rolled back: the next sweep tries again
    assert dispatched_at(api, fine) is not None
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == ["FINE"]


def test_a_rolled_back_transaction_publishes_nothing(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    make_hook(api, receiver.url)
    with pytest.raises(RuntimeError), writing(api.engine) as conn:
        publish(conn, "record.created", entity="account", record_id="GONE", payload={})
        raise RuntimeError("the change fails after publishing")
    drain(api)
    with api.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
    assert receiver.snapshot() == []
    assert delivery_rows(api) == []


def test_a_broken_hand_over_does_not_fail_the_committed_change(
    accounts: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    queue = queue_for(api.engine)
    assert queue is not None

    def broker_down(name: str, *args: Any, delay: float = 0.0) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(queue, "enqueue", broker_down)
    record = create(api, "account", name="Kept")
    assert api.get(f"{RECORDS}/account/{record['id']}").status_code == 200
    monkeypatch.undo()
    # The delivery was recorded with the change; only its message was lost.
    assert [d.status for d in delivery_rows(api)] == ["pending"]
    visibility = timedelta(seconds=Settings().task_visibility_timeout)
    later = utcnow() + event_dispatch.OVERDUE_AFTER + visibility + timedelta(seconds=1)
    sweep(context(api, clock=lambda: later))
    drain(api)
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == [record["id"]]
    assert [d.status for d in delivery_rows(api)] == ["delivered"]


def test_deliveries_are_recorded_in_the_transaction_of_the_change(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    with writing(api.engine) as conn:
        event_id = publish(
            conn, "record.created", entity="account", record_id="IN", payload={"id": "IN"}
        )
        # Before commit: the event is consumed and its delivery exists, in this transaction.
        assert conn.execute(select(events.c.dispatched_at)).scalar_one() is not None
        [delivery] = conn.execute(select(webhook_deliveries.c.event_id)).scalars()
        assert delivery == event_id
    drain(api)
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == ["IN"]


def test_a_failing_consumer_leaves_the_event_to_the_dispatch_task(
    accounts: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    real = event_dispatch.create_deliveries
    broken = {"yes": True}

    def create_deliveries(conn: Any, catalog: Any, event: Any, hooks: Any = None) -> list[str]:
        if broken["yes"]:
            broken["yes"] = False  # fails in the transaction, works for the task
            raise RuntimeError("the consumer breaks")
        return real(conn, catalog, event, hooks)

    monkeypatch.setattr(event_dispatch, "create_deliveries", create_deliveries)
    record = create(api, "account", name="Still saved")
    drain(api)
    assert api.get(f"{RECORDS}/account/{record['id']}").status_code == 200
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == [record["id"]]
    assert [d.status for d in delivery_rows(api)] == ["delivered"]


def test_announcers_see_only_committed_events_no_consumer_took(
    accounts: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = accounts
    monkeypatch.setattr(event_bus, "_consumers", [])
    seen: list[list[int]] = []
    monkeypatch.setattr(event_bus, "_announcers", [lambda _engine, ids: seen.append(list(ids))])
    with writing(api.engine) as conn:
        first = publish(conn, "record.created", entity="account", record_id="A", payload={})
        second = publish(conn, "record.created", entity="account", record_id="B", payload={})
    with pytest.raises(RuntimeError), writing(api.engine) as conn:
        publish(conn, "record.created", entity="account", record_id="C", payload={})
        raise RuntimeError("rolled back")
    assert seen == [[first, second]]
