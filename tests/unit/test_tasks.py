"""The task platform without a broker: the in-process queue (retries, backoff, give-up, drain,
periodic jobs, close), which queue a process gets, and how the Celery app is configured. Each
test registers its tasks in its own registry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from metacrm.platform.celery_app import CeleryQueue, make_celery, transport_options
from metacrm.platform.queues import start_queue
from metacrm.platform.registry import Registry, RetryPolicy
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import InProcessQueue, RetryLater, TaskHost, TaskQueue

SETTINGS = Settings(database_url="sqlite://")
# Nothing is sent: creating a Celery app or queue does not connect.
UNREACHABLE = "redis://127.0.0.1:1/0"
QUICK = RetryPolicy(base=0.01)


@dataclass
class Host:
    """What the tasks run with here: an engine never connected to, these settings, the queue."""

    engine: Engine
    settings: Settings
    queue: TaskQueue

    def clock(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def engine() -> Iterator[Engine]:
    # Never connected to: the host only carries it to the tasks.
    made = create_engine("sqlite://")
    yield made
    made.dispose()


@pytest.fixture
def registry() -> Registry:
    return Registry()


def in_process(registry: Registry, engine: Engine) -> InProcessQueue:
    queue = InProcessQueue(registry)
    queue.host = Host(engine, SETTINGS, queue)
    return queue


@pytest.fixture
def queue(registry: Registry, engine: Engine) -> Iterator[InProcessQueue]:
    made = in_process(registry, engine)
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
    policy = RetryPolicy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert [policy.backoff(n, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert policy.backoff(30) == policy.cap == 600.0


def test_a_name_is_registered_once() -> None:
    registry = Registry()
    registry.task("test.once", lambda _host: None)
    with pytest.raises(ValueError, match="registered already"):
        registry.task("test.once", lambda _host: None)
    with pytest.raises(LookupError, match="no task named"):
        registry.spec("test.never")


def test_an_enqueued_task_runs_with_its_arguments_and_host(
    queue: InProcessQueue, registry: Registry
) -> None:
    calls = Calls()
    contexts: list[TaskHost] = []

    def echo(context: TaskHost, a: int, b: list[str]) -> None:
        contexts.append(context)
        calls.add(a, b)

    registry.task("test.echo", echo)
    queue.enqueue("test.echo", 1, ["x"])
    queue.enqueue("test.echo", 2, [])
    assert queue.drain(10)
    assert sorted(calls.args) == [(1, ["x"]), (2, [])]
    assert all(c.queue is queue and c.settings is SETTINGS for c in contexts)


def test_retry_later_runs_the_task_again_with_the_same_arguments(
    queue: InProcessQueue, registry: Registry
) -> None:
    calls = Calls()

    def flaky(_context: TaskHost, value: str) -> None:
        if calls.add(value) < 3:
            raise RetryLater(0.01, "not yet")

    registry.task("test.flaky", flaky)
    queue.enqueue("test.flaky", "v")
    assert queue.drain(10)
    assert calls.args == [("v",)] * 3


def test_an_unexpected_error_is_retried_with_backoff_until_it_succeeds(engine: Engine) -> None:
    waits: list[int] = []

    class Recorded(RetryPolicy):
        """Quick, and remembers which retries it was asked to wait for."""

        def backoff(self, attempt: int, base: float | None = None) -> float:
            waits.append(attempt)
            return 0.01

    registry = Registry(retry=Recorded())
    calls = Calls()

    def broken_twice(_context: TaskHost) -> None:
        if calls.add() <= 2:
            raise ValueError("boom")

    registry.task("test.broken_twice", broken_twice)
    queue = in_process(registry, engine)
    try:
        queue.enqueue("test.broken_twice")
        assert queue.drain(10)
    finally:
        queue.close()
    assert len(calls.args) == 3
    assert waits == [1, 2]


def test_a_task_that_keeps_failing_is_given_up_after_the_retry_limit(engine: Engine) -> None:
    registry = Registry(retry=RetryPolicy(max_failures=3, base=0.01))
    calls = Calls()

    def always_broken(_context: TaskHost) -> None:
        calls.add()
        raise RuntimeError("never works")

    registry.task("test.always_broken", always_broken)
    queue = in_process(registry, engine)
    try:
        queue.enqueue("test.always_broken")
        assert queue.drain(10)
    finally:
        queue.close()
    assert len(calls.args) == 4  # the first run and three retries


def test_retry_later_does_not_count_as_a_failure(engine: Engine) -> None:
    registry = Registry(retry=RetryPolicy(max_failures=0))
    calls = Calls()

    def patient(_context: TaskHost) -> None:
        if calls.add() < 5:
            raise RetryLater(0.001)

    registry.task("test.patient", patient)
    queue = in_process(registry, engine)
    try:
        queue.enqueue("test.patient")
        assert queue.drain(10)
    finally:
        queue.close()
    assert len(calls.args) == 5


def test_drain_reports_work_still_running_after_its_timeout(
    queue: InProcessQueue, registry: Registry
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocked(_context: TaskHost) -> None:
        started.set()
        release.wait(30)

    registry.task("test.blocked", blocked)

    queue.enqueue("test.blocked")
    assert started.wait(10)
    assert queue.drain(0.05) is False
    release.set()
    assert queue.drain(10) is True


def test_a_delayed_task_waits_and_drain_ignores_work_due_after_its_timeout(
    queue: InProcessQueue, registry: Registry
) -> None:
    calls = Calls()
    registry.task("test.later", lambda _context: calls.add())

    queue.enqueue("test.later", delay=3600)
    assert queue.drain(0.05) is True
    assert calls.args == []


def test_periodic_jobs_run_again_and_again_once_started(
    queue: InProcessQueue, registry: Registry
) -> None:
    calls = Calls()
    three = threading.Event()

    def tick(_context: TaskHost) -> None:
        if calls.add() >= 3:
            three.set()

    registry.task("test.tick", tick, every=0.01)

    assert not three.wait(0.05)  # nothing runs before start_periodic
    assert calls.args == []
    queue.start_periodic()
    assert three.wait(10)


def test_a_closed_queue_runs_nothing_more(engine: Engine, registry: Registry) -> None:
    queue = in_process(registry, engine)
    calls = Calls()
    registry.task("test.after_close", lambda _context: calls.add())

    queue.close()
    queue.enqueue("test.after_close")
    assert queue.drain(0.05)
    assert calls.args == []


def test_without_redis_the_queue_runs_tasks_in_process_with_its_host(
    engine: Engine, registry: Registry
) -> None:
    host = Host(engine, SETTINGS, queue=None)  # type: ignore[arg-type]
    queue = start_queue(SETTINGS, registry, host)
    try:
        assert isinstance(queue, InProcessQueue)
        assert queue.host is host and queue.registry is registry
    finally:
        queue.close()


def test_with_redis_configured_the_queue_is_celery(engine: Engine, registry: Registry) -> None:
    settings = Settings(database_url="sqlite://", redis_url=UNREACHABLE)
    queue = start_queue(settings, registry, Host(engine, settings, queue=None))  # type: ignore[arg-type]
    try:
        assert isinstance(queue, CeleryQueue)
    finally:
        queue.close()


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
    registry = Registry()
    registry.task("test.plain", lambda _context: None)
    registry.task("test.every_minute", lambda _context: None, every=60.0)

    app = make_celery(Settings(redis_url=UNREACHABLE, task_visibility_timeout=7), registry)
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
        make_celery(Settings(), Registry())


def eager_app(registry: Registry, engine: Engine) -> Any:
    """A Celery app whose tasks run in this process (`apply`), retries included, with a host
    made on first use as a worker makes it."""
    settings = Settings(database_url="sqlite://", redis_url=UNREACHABLE)
    made: list[Host] = []

    def host() -> Host:
        made.append(Host(engine, settings, queue=None))  # type: ignore[arg-type]
        return made[-1]

    app = make_celery(settings, registry, host)
    app.made_hosts = made  # type: ignore[attr-defined]
    return app


def test_under_celery_retry_later_runs_the_task_again(engine: Engine) -> None:
    registry = Registry()
    calls = Calls()

    def flaky(_context: TaskHost, value: int) -> None:
        if calls.add(value) < 3:
            raise RetryLater(5)

    registry.task("test.celery_flaky", flaky)
    app = eager_app(registry, engine)
    app.tasks["test.celery_flaky"].apply(args=[7])
    assert calls.args == [(7,)] * 3
    assert len(app.made_hosts) == 1  # made once, on first use


def test_an_app_that_only_sends_tasks_does_not_run_them() -> None:
    registry = Registry(retry=RetryPolicy(max_failures=0))
    calls = Calls()
    registry.task("test.sent_only", lambda _context: calls.add())
    sender = make_celery(Settings(redis_url=UNREACHABLE), registry)  # no host factory
    result = sender.tasks["test.sent_only"].apply()
    assert result.successful()  # refused without a host, given up at once, and logged
    assert calls.args == []


def test_under_celery_a_failing_task_is_given_up_after_the_retry_limit(engine: Engine) -> None:
    registry = Registry(retry=RetryPolicy(max_failures=2, base=0.01))
    calls = Calls()

    def broken(_context: TaskHost) -> None:
        calls.add()
        raise RuntimeError("never works")

    registry.task("test.celery_broken", broken)
    result = eager_app(registry, engine).tasks["test.celery_broken"].apply()
    assert len(calls.args) == 3
    assert result.successful()  # given up: acknowledged, not left to redeliver forever
