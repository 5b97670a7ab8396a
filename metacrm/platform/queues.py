"""Which task queue a process uses: Celery over Redis when `METACRM_REDIS_URL` is set,
otherwise the in-process queue. Decided once by whoever starts the process."""

from __future__ import annotations

from metacrm.platform.registry import Registry
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import InProcessQueue, TaskHost, TaskQueue


def start_queue(settings: Settings, registry: Registry, host: TaskHost) -> TaskQueue:
    """A new queue for `host`'s tasks; the caller closes it when the process stops."""
    if settings.redis_url:
        from metacrm.platform.celery_app import CeleryQueue

        return CeleryQueue(settings, registry)
    return InProcessQueue(registry, host)
