"""Webhooks delivered by the embedded (in-process) task queue on SQLite and PostgreSQL: signed
deliveries for record changes, filtering, retries with backoff, giving up, exactly one delivery
per event, the sweep that recovers lost hand-overs, and nothing for rolled-back changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import ACCOUNT, OPPORTUNITY, Api, RecordingQueue
from sqlalchemy import func, select, update
from webhook_receiver import Receiver, receiving

from metacrm.platform.clock import as_utc, utcnow
from metacrm.platform.db import writing
from metacrm.platform.events import DISPATCH_TASK, Event
from metacrm.platform.settings import Settings
from metacrm.platform.systables import events, webhook_deliveries
from metacrm.platform.tasks import InProcessQueue, RetryLater
from metacrm.runtime import event_dispatch
from metacrm.runtime.context import RequestContext
from metacrm.runtime.event_dispatch import dispatch_one, sweep
from metacrm.runtime.events import publish
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services
from metacrm.runtime.startup import build_registry
from metacrm.runtime.webhooks import Deliverer, DeliveryPolicy

V1 = "/api/v1"
HOOKS = f"{V1}/webhooks"
RECORDS = f"{V1}/records"
POLICY = DeliveryPolicy()
# The delivery task as the built-in registry has it.
deliver = Deliverer(POLICY).deliver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


@pytest.fixture
def accounts(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    return api


def bare_services(api: Api) -> Services:
    """The same database and behaviour through services whose queue hands nothing on: what they
    commit is never delivered, as when a process dies between commit and enqueue."""
    return Services(
        api.services.settings, api.engine, api.services.registry, queue=RecordingQueue()
    )


@pytest.fixture
def bare(api: Api) -> Services:
    return bare_services(api)


def drain(api: Api) -> None:
    queue = api.services.queue
    assert isinstance(queue, InProcessQueue)
    assert queue.drain(30), "background work did not finish"


def context(api: Api, clock: Any = utcnow) -> Services:
    """What a task of the app runs with, at the clock's time."""
    return api.services_with(clock=clock)


def system(api: Api, conn: Any) -> RequestContext:
    return api.services.system_context(conn)


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


def publish_unannounced(api: Api, record_id: str = "R1") -> int:
    """An event committed but never dispatched: no consumer took it in its transaction and its
    hand-over to the queue was lost (what the dispatch task and the sweep exist for)."""
    with writing(api.engine) as conn:
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


def test_a_failing_receiver_is_retried_until_it_answers(make_api: Any, receiver: Receiver) -> None:
    api = make_api(registry=build_registry(delivery=DeliveryPolicy(retry_base_seconds=0.01)))
    api.make_entity(ACCOUNT)
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
    accounts: Api, bare: Services
) -> None:
    api = accounts
    with receiving([500] * POLICY.max_attempts) as failing:
        make_hook(api, failing.url)
        event_id = publish_unannounced(api)
        assert dispatch_one(bare, event_id)  # enqueued on a queue that runs nothing
        [delivery] = delivery_rows(api)
        now = utcnow().replace(microsecond=0)
        task = context(api, clock=lambda: now)
        for attempt in range(1, POLICY.max_attempts):
            with pytest.raises(RetryLater) as retry:
                deliver(task, delivery.id)
            wait = POLICY.retry_base_seconds * 2 ** (attempt - 1)
            assert retry.value.delay == wait
            [row] = delivery_rows(api)
            assert (row.status, row.attempts, row.response_code) == ("pending", attempt, 500)
            assert as_utc(row.next_attempt_at) == now + timedelta(seconds=wait)
            assert row.last_error == "HTTP 500: receiver says no"
        deliver(task, delivery.id)  # the last attempt: no retry
        [row] = delivery_rows(api)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "failed",
            POLICY.max_attempts,
            None,
        )
        deliver(task, delivery.id)  # a failed delivery is left alone
        assert len(failing.snapshot()) == POLICY.max_attempts


def test_an_unreachable_receiver_is_an_attempt_with_the_error_recorded(
    accounts: Api, bare: Services
) -> None:
    api = accounts
    with receiving() as gone:
        url = gone.url
    make_hook(api, url)
    assert dispatch_one(bare, publish_unannounced(api))
    [delivery] = delivery_rows(api)
    with pytest.raises(RetryLater):
        deliver(context(api), delivery.id)
    [row] = delivery_rows(api)
    assert (row.status, row.attempts, row.response_code) == ("pending", 1, None)
    assert row.last_error.startswith("ConnectError")


def test_dispatching_an_event_twice_delivers_it_once(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(api)
    assert dispatch_one(api.services, event_id) is True
    assert dispatch_one(api.services, event_id) is False
    # Even if the claim were lost, the (webhook, event) key allows one delivery.
    with writing(api.engine) as conn:
        conn.execute(update(events).where(events.c.id == event_id).values(dispatched_at=None))
    assert dispatch_one(api.services, event_id) is True
    drain(api)
    assert len(delivery_rows(api)) == 1
    assert len(receiver.snapshot()) == 1


def test_concurrent_dispatches_of_one_event_claim_it_once(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(api)
    start = threading.Barrier(4)
    results: list[bool] = []

    def race() -> None:
        start.wait(10)
        results.append(dispatch_one(api.services, event_id))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, False, False, True]
    drain(api)
    assert len(delivery_rows(api)) == 1


def test_the_sweep_dispatches_an_event_whose_hand_over_was_lost(
    accounts: Api, receiver: Receiver
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    event_id = publish_unannounced(api, "LOST")
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
    accounts: Api, receiver: Receiver, bare: Services
) -> None:
    api = accounts
    make_hook(api, receiver.url)
    assert dispatch_one(bare, publish_unannounced(api))
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


def with_consumer(consumer: Any) -> RuntimeRegistry:
    """The built-in registry with one more event consumer after the others."""
    registry = build_registry()
    registry.consume_events(consumer)
    return registry


def test_an_event_that_cannot_be_dispatched_does_not_hold_up_the_sweep(
    make_api: Any, receiver: Receiver
) -> None:
    def breaks_on_poison(_ctx: RequestContext, event: Event) -> None:
        if event.record_id == "POISON":
            raise RuntimeError("this event breaks its consumer")

    api = make_api(registry=with_consumer(breaks_on_poison))
    api.make_entity(ACCOUNT)
    make_hook(api, receiver.url)
    poison = publish_unannounced(api, "POISON")
    fine = publish_unannounced(api, "FINE")
    later = utcnow() + event_dispatch.STALE_AFTER + timedelta(seconds=1)
    sweep(context(api, clock=lambda: later))
    drain(api)
    assert dispatched_at(api, poison) is None  # rolled back: the next sweep tries again
    assert dispatched_at(api, fine) is not None
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == ["FINE"]


def test_a_rolled_back_transaction_publishes_nothing(accounts: Api, receiver: Receiver) -> None:
    api = accounts
    make_hook(api, receiver.url)
    with pytest.raises(RuntimeError), api.services.writing() as conn:
        publish(system(api, conn), "record.created", entity="account", record_id="GONE", payload={})
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
    queue = api.services.queue

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
    with api.services.writing() as conn:
        event_id = publish(
            system(api, conn),
            "record.created",
            entity="account",
            record_id="IN",
            payload={"id": "IN"},
        )
        # Before commit: the event is consumed and its delivery exists, in this transaction.
        assert conn.execute(select(events.c.dispatched_at)).scalar_one() is not None
        [delivery] = conn.execute(select(webhook_deliveries.c.event_id)).scalars()
        assert delivery == event_id
    drain(api)
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == ["IN"]


def test_a_failing_consumer_leaves_the_event_to_the_dispatch_task(
    make_api: Any, receiver: Receiver
) -> None:
    broken = {"yes": False}

    def breaks_once(_ctx: RequestContext, event: Event) -> None:
        if broken["yes"]:
            broken["yes"] = False  # fails in the transaction, works for the task
            raise RuntimeError("the consumer breaks")

    api = make_api(registry=with_consumer(breaks_once))
    api.make_entity(ACCOUNT)
    make_hook(api, receiver.url)
    broken["yes"] = True
    record = create(api, "account", name="Still saved")
    drain(api)
    assert api.get(f"{RECORDS}/account/{record['id']}").status_code == 200
    assert [r.json["data"]["id"] for r in receiver.snapshot()] == [record["id"]]
    assert [d.status for d in delivery_rows(api)] == ["delivered"]


def test_only_committed_events_no_consumer_took_are_handed_to_the_queue(make_api: Any) -> None:
    queue = RecordingQueue()
    api = make_api(registry=RuntimeRegistry(), queue=queue)  # no consumer at all
    with api.services.writing() as conn:
        ctx = system(api, conn)
        first = publish(ctx, "record.created", entity="account", record_id="A", payload={})
        second = publish(ctx, "record.created", entity="account", record_id="B", payload={})
        assert queue.enqueued == []  # not before commit
    with pytest.raises(RuntimeError), api.services.writing() as conn:
        publish(system(api, conn), "record.created", entity="account", record_id="C", payload={})
        raise RuntimeError("rolled back")
    assert queue.enqueued == [(DISPATCH_TASK, ([first, second],))]
