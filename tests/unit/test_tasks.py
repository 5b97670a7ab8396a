"""The task platform without a broker: the in-process queue (retries, backoff, give-up, drain,
periodic jobs, close), which queue an engine gets, and how the Celery app is configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from metacrm.platform import celery_app, tasks
from metacrm.platform.celery_app import CeleryQueue, make_celery, transport_options
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import (
    InProcessQueue,
    RetryLater,
    TaskContext,
    backoff,
    periodic,
    queue_for,
    start_queue,
    stop_queue,
    task,
)

SETTINGS = Settings(database_url="sqlite://")
# Nothing is sent: creating a Celery app or queue does not connect.
UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks registered by a test exist only for that test (a periodic one would otherwise run
    in every later queue of this process)."""
    monkeypatch.setattr(tasks, "_registry", {})


@pytest.fixture
def engine() -> Iterator[Engine]:
    # Never connected to: the queue only carries it to the tasks.
    made = create_engine("sqlite://")
    yield made
    made.dispose()


@pytest.fixture
def queue(engine: Engine) -> Iterator[InProcessQueue]:
    made = InProcessQueue(SETTINGS, engine)
    yield made
    made.close()


class Calls:
    """What tasks were called with, thread-safe."""

    def __init__(self) -> None:
        self.args: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def add(self, *args: Any) -> int:
        with self._lock:
            self.args.append(args)
            return len(self.args)


def test_backoff_doubles_from_its_base_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert [backoff(n, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff(30) == tasks.MAX_BACKOFF_SECONDS


def test_an_enqueued_task_runs_with_its_arguments_and_context(queue: InProcessQueue) -> None:
    calls = Calls()
    contexts: list[TaskContext] = []

    @task("test.echo")
    def echo(context: TaskContext, a: int, b: list[str]) -> None:
        contexts.append(context)
        calls.add(a, b)

    queue.enqueue("test.echo", 1, ["x"])
    queue.enqueue("test.echo", 2, [])
    assert queue.drain(10)
    assert sorted(calls.args) == [(1, ["x"]), (2, [])]
    assert all(c.queue is queue and c.settings is SETTINGS for c in contexts)


def test_retry_later_runs_the_task_again_with_the_same_arguments(queue: InProcessQueue) -> None:
    calls = Calls()

    @task("test.flaky")
    def flaky(_context: TaskContext, value: str) -> None:
        if calls.add(value) < 3:
            raise RetryLater(0.01, "not yet")

    queue.enqueue("test.flaky", "v")
    assert queue.drain(10)
    assert calls.args == [("v",)] * 3


def test_an_unexpected_error_is_retried_with_backoff_until_it_succeeds(
    queue: InProcessQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[int] = []

    def quick_backoff(attempt: int, base: float = 2.0) -> float:
        waits.append(attempt)
        return 0.01

    monkeypatch.setattr(tasks, "backoff", quick_backoff)
    calls = Calls()

    @task("test.broken_twice")
    def broken_twice(_context: TaskContext) -> None:
        if calls.add() <= 2:
            raise ValueError("boom")

    queue.enqueue("test.broken_twice")
    assert queue.drain(10)
    assert len(calls.args) == 3
    assert waits == [1, 2]


def test_a_task_that_keeps_failing_is_given_up_after_the_retry_limit(
    queue: InProcessQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "backoff", lambda attempt, base=2.0: 0.01)
    monkeypatch.setattr(tasks, "MAX_FAILURE_RETRIES", 3)
    calls = Calls()

    @task("test.always_broken")
    def always_broken(_context: TaskContext) -> None:
        calls.add()
        raise RuntimeError("never works")

    queue.enqueue("test.always_broken")
    assert queue.drain(10)
    assert len(calls.args) == 4  # the first run and three retries


def test_retry_later_does_not_count_as_a_failure(
    queue: InProcessQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "MAX_FAILURE_RETRIES", 0)
    calls = Calls()

    @task("test.patient")
    def patient(_context: TaskContext) -> None:
        if calls.add() < 5:
            raise RetryLater(0.001)

    queue.enqueue("test.patient")
    assert queue.drain(10)
    assert len(calls.args) == 5


def test_drain_reports_work_still_running_after_its_timeout(queue: InProcessQueue) -> None:
    started, release = threading.Event(), threading.Event()

    @task("test.blocked")
    def blocked(_context: TaskContext) -> None:
        started.set()
        release.wait(30)

    queue.enqueue("test.blocked")
    assert started.wait(10)
    assert queue.drain(0.05) is False
    release.set()
    assert queue.drain(10) is True


def test_a_delayed_task_waits_and_drain_ignores_work_due_after_its_timeout(
    queue: InProcessQueue,
) -> None:
    calls = Calls()

    @task("test.later")
    def later(_context: TaskContext) -> None:
        calls.add()

    queue.enqueue("test.later", delay=3600)
    assert queue.drain(0.05) is True
    assert calls.args == []


def test_periodic_jobs_run_again_and_again_once_started(queue: InProcessQueue) -> None:
    calls = Calls()
    three = threading.Event()

    @periodic("test.tick", every=0.01)
    def tick(_context: TaskContext) -> None:
        if calls.add() >= 3:
            three.set()

    assert not three.wait(0.05)  # nothing runs before start_periodic
    assert calls.args == []
    queue.start_periodic()
    assert three.wait(10)


def test_a_closed_queue_runs_nothing_more(engine: Engine) -> None:
    queue = InProcessQueue(SETTINGS, engine)
    calls = Calls()

    @task("test.after_close")
    def after_close(_context: TaskContext) -> None:
        calls.add()

    queue.close()
    queue.enqueue("test.after_close")
    assert queue.drain(0.05)
    assert calls.args == []


def test_each_engine_gets_one_queue_until_it_is_stopped(engine: Engine) -> None:
    first = start_queue(SETTINGS, engine)
    try:
        assert isinstance(first, InProcessQueue)
        assert start_queue(SETTINGS, engine) is first
        assert queue_for(engine) is first
    finally:
        stop_queue(engine)
    assert queue_for(engine) is None
    stop_queue(engine)  # stopping twice is harmless


def test_with_redis_configured_the_queue_is_celery(engine: Engine) -> None:
    settings = Settings(database_url="sqlite://", redis_url=UNREACHABLE)
    queue = start_queue(settings, engine)
    try:
        assert isinstance(queue, CeleryQueue)
    finally:
        stop_queue(engine)


# ---- Celery configuration ------------------------------------------------------------------


def test_restore_interval_follows_the_visibility_timeout() -> None:
    assert transport_options(3) == {
        "visibility_timeout": 3,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    assert transport_options(40)["unacked_restore_interval"] == 10
    assert transport_options(3600)["unacked_restore_interval"] == 60


def test_the_celery_app_acknowledges_late_and_schedules_every_periodic_job() -> None:
    @task("test.plain")
    def plain(_context: TaskContext) -> None:
        pass

    @periodic("test.every_minute", every=60.0)
    def every_minute(_context: TaskContext) -> None:
        pass

    app = make_celery(Settings(redis_url=UNREACHABLE, task_visibility_timeout=7))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 7
    assert conf.beat_schedule == {
        "test.every_minute": {"task": "test.every_minute", "schedule": 60.0}
    }
    assert {"test.plain", "test.every_minute"} <= set(app.tasks)


def test_make_celery_needs_redis() -> None:
    with pytest.raises(ValueError, match="METACRM_REDIS_URL"):
        make_celery(Settings())


@pytest.fixture
def eager_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A Celery app whose tasks run in this process (`apply`), retries included."""
    monkeypatch.setattr(celery_app, "_worker_context", {})
    monkeypatch.setattr(tasks, "_queues", {})
    # Never connected to: the tasks below don't touch the database.
    settings = Settings(database_url=f"sqlite:///{tmp_path}/unused.db", redis_url=UNREACHABLE)
    return lambda: make_celery(settings)


def test_under_celery_retry_later_runs_the_task_again(eager_app: Any) -> None:
    calls = Calls()

    @task("test.celery_flaky")
    def flaky(_context: TaskContext, value: int) -> None:
        if calls.add(value) < 3:
            raise RetryLater(5)

    eager_app().tasks["test.celery_flaky"].apply(args=[7])
    assert calls.args == [(7,)] * 3


def test_under_celery_a_failing_task_is_given_up_after_the_retry_limit(
    eager_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(celery_app, "MAX_FAILURE_RETRIES", 2)
    calls = Calls()

    @task("test.celery_broken")
    def broken(_context: TaskContext) -> None:
        calls.add()
        raise RuntimeError("never works")

    result = eager_app().tasks["test.celery_broken"].apply()
    assert len(calls.args) == 3
    assert result.successful()  # given up: acknowledged, not left to redeliver forever
