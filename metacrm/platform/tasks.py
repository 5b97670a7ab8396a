"""Background work: one set of task functions, run by Celery workers when Redis is configured
and by a small in-process queue when it is not.

A task is a plain function `fn(context, *args)` registered with `@task`; periodic jobs are
tasks with an interval (`@periodic`). Task functions are idempotent: they may run twice (a
worker killed mid-task, a message redelivered) and must leave the same result. To run again
later (a webhook that answered 503) a task raises `RetryLater(seconds)`; an unexpected
exception is retried with exponential backoff a bounded number of times.

Which queue a process uses is decided once, by whoever starts it (`start_queue`): the task
functions, their arguments and their retries are the same either way.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from metacrm.platform.clock import utcnow
from metacrm.platform.settings import Settings

log = logging.getLogger("metacrm.tasks")

# An unexpected failure is retried this many times, waiting 2, 4, 8 … seconds (capped).
MAX_FAILURE_RETRIES = 8
MAX_BACKOFF_SECONDS = 600.0


class RetryLater(Exception):
    """Raised by a task to be run again, with the same arguments, after `delay` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:g}s")
        self.delay = delay


@dataclass
class TaskContext:
    """What a running task can use: the database, the settings, the queue for follow-up work,
    and the clock (tests pass their own)."""

    engine: Engine
    settings: Settings
    queue: TaskQueue
    clock: Callable[[], datetime] = utcnow


TaskFunction = Callable[..., None]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: TaskFunction
    # Periodic jobs: run every this many seconds (by beat, or the in-process timer).
    every: float | None = None


_registry: dict[str, TaskSpec] = {}


def task(name: str) -> Callable[[TaskFunction], TaskFunction]:
    def register(fn: TaskFunction) -> TaskFunction:
        _registry[name] = TaskSpec(name, fn)
        return fn

    return register


def periodic(name: str, every: float) -> Callable[[TaskFunction], TaskFunction]:
    def register(fn: TaskFunction) -> TaskFunction:
        _registry[name] = TaskSpec(name, fn, every)
        return fn

    return register


def registered() -> dict[str, TaskSpec]:
    """Every task registered so far. Task modules register themselves on import; whoever
    starts a process imports them (`metacrm.runtime.jobs`) before starting a queue."""
    return dict(_registry)


def backoff(attempt: int, base: float = 2.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): base, 2·base, 4·base …"""
    return min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


class TaskQueue(Protocol):
    settings: Settings

    def enqueue(self, name: str, *args: Any, delay: float = 0.0) -> None: ...

    def close(self) -> None: ...


# ---- which queue serves an engine ---------------------------------------------------------

_queues: dict[int, TaskQueue] = {}


def start_queue(settings: Settings, engine: Engine) -> TaskQueue:
    """The queue this process uses for work on `engine`: Celery over Redis when configured,
    otherwise in-process threads. Later calls for the same engine return the same queue."""
    found = _queues.get(id(engine))
    if found is not None:
        return found
    queue: TaskQueue
    if settings.redis_url:
        from metacrm.platform.celery_app import CeleryQueue

        queue = CeleryQueue(settings)
    else:
        queue = InProcessQueue(settings, engine)
    _queues[id(engine)] = queue
    return queue


def queue_for(engine: Engine) -> TaskQueue | None:
    return _queues.get(id(engine))


def stop_queue(engine: Engine) -> None:
    queue = _queues.pop(id(engine), None)
    if queue is not None:
        queue.close()


def run_task(spec: TaskSpec, context: TaskContext, args: tuple[Any, ...]) -> None:
    spec.fn(context, *args)


# ---- in-process ------------------------------------------------------------------------------


@dataclass(order=True)
class _Due:
    at: float
    order: int
    name: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    failures: int = field(compare=False, default=0)


class InProcessQueue:
    """Tasks on two worker threads; delayed ones wait in a heap watched by a timer thread;
    periodic jobs are enqueued by the same timer. Everything stops with the process — the
    database (the event outbox, pending deliveries) is what survives a crash."""

    def __init__(self, settings: Settings, engine: Engine, workers: int = 2) -> None:
        self.settings = settings
        self.context = TaskContext(engine, settings, self)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="metacrm-task")
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._busy = 0
        self._closed = False
        self._periodic: dict[str, float] = {}
        self._timer = threading.Thread(target=self._watch, name="metacrm-timer", daemon=True)
        self._timer.start()

    def enqueue(self, name: str, *args: Any, delay: float = 0.0) -> None:
        self._push(name, args, delay, failures=0)

    def start_periodic(self) -> None:
        """Enqueue every periodic job at its interval from now on (the embedded `beat`)."""
        now = time.monotonic()
        with self._wake:
            for spec in registered().values():
                if spec.every is not None:
                    self._periodic[spec.name] = now + spec.every
            self._wake.notify()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no task is running or due within `timeout` (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._busy or any(d.at <= deadline for d in self._due):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(min(remaining, 0.05))
            return True

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _push(self, name: str, args: tuple[Any, ...], delay: float, failures: int) -> None:
        with self._wake:
            if self._closed:
                return
            item = _Due(time.monotonic() + max(delay, 0.0), next(self._order), name, args, failures)
            heapq.heappush(self._due, item)
            self._wake.notify()

    def _watch(self) -> None:
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                for name, at in list(self._periodic.items()):
                    if at <= now:
                        spec = _registry[name]
                        self._periodic[name] = now + (spec.every or 60.0)
                        heapq.heappush(self._due, _Due(now, next(self._order), name, ()))
                while self._due and self._due[0].at <= now:
                    item = heapq.heappop(self._due)
                    self._busy += 1
                    self._pool.submit(self._run, item)
                waits = [d.at for d in self._due[:1]] + list(self._periodic.values())
                self._wake.wait(max(min(waits) - now, 0.001) if waits else None)

    def _run(self, item: _Due) -> None:
        try:
            spec = _registry[item.name]
            run_task(spec, self.context, item.args)
        except RetryLater as retry:
            self._push(item.name, item.args, retry.delay, item.failures)
        except Exception:
            failures = item.failures + 1
            if failures > MAX_FAILURE_RETRIES:
                log.exception(
                    "task %s%r failed %d times; giving up", item.name, item.args, failures
                )
            else:
                log.exception("task %s%r failed; retrying", item.name, item.args)
                self._push(item.name, item.args, backoff(failures), failures)
        finally:
            with self._wake:
                self._busy -= 1
                self._wake.notify_all()
