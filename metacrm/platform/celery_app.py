"""The Celery side of background work (used when `METACRM_REDIS_URL` is set).

Every registered task becomes a Celery task of the same name. Messages are acknowledged only
after the task finished (`acks_late`) and are given back when a worker dies mid-task
(`reject_on_worker_lost`), so a killed worker loses nothing: Redis hands the message to the
next worker once the visibility timeout has passed (see `transport_options`). Workers take one
message at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from metacrm.platform.registry import Registry, TaskSpec
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import RetryLater, TaskHost, run_task

log = logging.getLogger("metacrm.tasks")
QUEUE_NAME = "metacrm"
HostFactory = Callable[[], TaskHost]


class CeleryQueue:
    """Sends tasks to Redis for `metacrm worker` processes to run."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.app = make_celery(settings, registry)

    def enqueue(self, name: str, *args: Any, delay: float = 0.0) -> None:
        self.app.send_task(name, args=list(args), countdown=delay or None, queue=QUEUE_NAME)

    def close(self) -> None:
        self.app.close()


def make_celery(
    settings: Settings, registry: Registry, host_factory: HostFactory | None = None
) -> Celery:
    """A Celery app knowing every task of `registry`. A worker passes `host_factory`, which
    makes the tasks' host (database engine, queue …) on first use in each worker process,
    after any fork; an app that only sends tasks needs none."""
    if not settings.redis_url:
        raise ValueError("Celery needs METACRM_REDIS_URL")
    app = Celery("metacrm", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_default_queue=QUEUE_NAME,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.task_visibility_timeout),
        timezone="UTC",
        beat_schedule={
            spec.name: {"task": spec.name, "schedule": spec.every} for spec in registry.periodic()
        },
    )
    host = _LazyHost(host_factory)
    for spec in registry.tasks.values():
        _register(app, registry, spec, host)
    return app


def transport_options(visibility_timeout: int) -> dict[str, int]:
    """Redis gives an unacknowledged message back once it is `visibility_timeout` old, but only
    when some worker looks: by default every 10 s x 10 calls, which would leave a killed
    worker's task waiting ~100 s whatever the timeout. Looking every quarter of the timeout
    (1 s to 60 s; one small sorted-set range query) recovers it soon after the timeout."""
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(60, visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }


class _LazyHost:
    """The tasks' host, made once per process on first use."""

    def __init__(self, factory: HostFactory | None) -> None:
        self._factory = factory
        self._host: TaskHost | None = None
        self._lock = threading.Lock()

    def get(self) -> TaskHost:
        with self._lock:
            if self._host is None:
                if self._factory is None:
                    raise RuntimeError("this Celery app only sends tasks; it can't run them")
                self._host = self._factory()
            return self._host


def _register(app: Celery, registry: Registry, spec: TaskSpec, host: _LazyHost) -> None:
    policy = registry.retry

    def run(self: Any, *args: Any) -> None:
        try:
            run_task(registry, spec.name, host.get(), args)
        except RetryLater as retry:
            raise self.retry(countdown=retry.delay, max_retries=None) from None
        except Exception as exc:
            failures = self.request.retries + 1
            if failures > policy.max_failures:
                log.exception("task %s%r failed %d times; giving up", spec.name, args, failures)
                return
            log.exception("task %s%r failed; retrying", spec.name, args)
            countdown = policy.backoff(failures)
            raise self.retry(exc=exc, countdown=countdown, max_retries=None) from None

    # Not shared: each app gets exactly the tasks it was made with (a worker also makes an app
    # to enqueue follow-up work, which must not re-register into the first).
    app.task(name=spec.name, bind=True, acks_late=True, shared=False)(run)
