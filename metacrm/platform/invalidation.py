"""Telling every process that metadata changed, through Redis pub/sub when Redis is configured.

Each process already compares the metadata stamp on every request, which is always correct;
the message lets processes drop their caches at once instead of on their next request, and
lets processes without requests (workers) notice at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection

from metacrm.platform.db import after_commit, transaction_state

CHANNEL = "metacrm:metadata"
RECONNECT_SECONDS = 1.0
_CHANGED = "metadata_changed"
log = logging.getLogger("metacrm")


def metadata_changed(conn: Connection) -> None:
    """Note that this transaction changed metadata; its owner announces it after commit
    (`announce_after_commit`)."""
    transaction_state(conn)[_CHANGED] = True


def announce_after_commit(conn: Connection, redis_url: str | None) -> None:
    """Once this transaction commits, tell every process through Redis if it changed metadata.
    Call at the end of the transaction's work, before it commits."""
    if redis_url and transaction_state(conn).get(_CHANGED):
        after_commit(conn, lambda: _publish(redis_url))


def _publish(url: str) -> None:
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.publish(CHANNEL, "changed")
    except redis.RedisError as exc:
        # Not fatal: every process still checks the stamp on its next request.
        log.warning("could not announce a metadata change: %s", exc)


class Listener:
    """A daemon thread that calls `on_change` for every announcement.

    When the connection to Redis breaks, announcements may have been missed: `on_change` is
    called then too, and the thread keeps trying to reconnect (and re-subscribe) until closed.
    """

    def __init__(self, redis_url: str, on_change: Callable[[], None]) -> None:
        import redis

        self._client = redis.Redis.from_url(redis_url, health_check_interval=30)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(**{CHANNEL: lambda _message: on_change()})
        self._on_change = on_change
        self._closed = threading.Event()
        self._thread = self._pubsub.run_in_thread(
            sleep_time=1.0, daemon=True, exception_handler=self._broken
        )

    def _broken(self, error: BaseException, _pubsub: object, _thread: object) -> None:
        if self._closed.is_set():
            return
        log.warning("metadata-change listener lost Redis (%s); reconnecting", error)
        self._on_change()
        self._closed.wait(RECONNECT_SECONDS)

    def close(self) -> None:
        self._closed.set()
        self._thread.stop()
        # Closing the connection under a thread still reading it would raise in that thread.
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._client.close()
