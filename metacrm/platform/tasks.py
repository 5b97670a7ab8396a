"""Background work: one set of task functions, run by Celery workers when Redis is configured
and by a small in-process queue when it is not.

A task is a plain function `fn(host, *args)` registered by name in the process's `Registry`;
periodic jobs are tasks with an interval. `host` is whatever the process that runs tasks gives
them (the runtime's services): the database, the settings, the queue for follow-up work and the
clock. Task functions are idempotent: they may run twice (a worker killed mid-task, a message
redelivered) and must leave the same result. To run again later (a webhook that answered 503) a
task raises `RetryLater(seconds)`; an unexpected exception is retried with exponential backoff
as the registry's `RetryPolicy` says.

Which queue a process uses is decided once, by whoever starts it (`platform.queues`): the task
functions, their arguments and their retries are the same either way.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from metacrm.platform.registry import Registry
from metacrm.platform.settings import Settings

log = logging.getLogger("metacrm.tasks")


class RetryLater(Exception):
    """Raised by a task to be run again, with the same arguments, after `delay` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:g}s")
        self.delay = delay


class TaskQueue(Protocol):
    def enqueue(self, name: str, *args: Any, delay: float = 0.0) -> None: ...

    def close(self) -> None: ...


class TaskHost(Protocol):
    """What a running task can use, provided by the process that runs it."""

    @property
    def engine(self) -> Engine: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def queue(self) -> TaskQueue: ...

    def clock(self) -> datetime: ...


def run_task(registry: Registry, name: str, host: TaskHost, args: tuple[Any, ...]) -> None:
    registry.spec(name).fn(host, *args)


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

    def __init__(self, registry: Registry, host: TaskHost | None = None, workers: int = 2) -> None:
        self.registry = registry
        # Tasks run with this host; a process that only enqueues (tests of the queue) may set it
        # later with `serve`.
        self.host = host
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
            for spec in self.registry.periodic():
                self._periodic[spec.name] = now + (spec.every or 60.0)
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
                        spec = self.registry.spec(name)
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
            if self.host is None:
                raise RuntimeError("this queue has no host to run tasks with")
            run_task(self.registry, item.name, self.host, item.args)
        except RetryLater as retry:
            self._push(item.name, item.args, retry.delay, item.failures)
        except Exception:
            failures = item.failures + 1
            if failures > self.registry.retry.max_failures:
                log.exception(
                    "task %s%r failed %d times; giving up", item.name, item.args, failures
                )
            else:
                log.exception("task %s%r failed; retrying", item.name, item.args)
                self._push(item.name, item.args, self.registry.retry.backoff(failures), failures)
        finally:
            with self._wake:
                self._busy -= 1
                self._wake.notify_all()
