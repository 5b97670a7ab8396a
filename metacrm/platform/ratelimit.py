"""Counting attempts per key in a time window: in Redis when it is configured, so every process
shares the counts, and in this process's memory otherwise.

A window opens with the first counted attempt of a key and closes `window` seconds later. An
attempt is counted *before* the work it guards (acquire), so many attempts racing in parallel
can't all slip under the limit; work that turns out not to count gives its attempt back
(release), and `reset` forgets a key at once (a successful sign-in clears its account's count).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import redis

DEFAULT_PREFIX = "metacrm:ratelimit:"
# How often, at most, the in-process limiter drops closed windows (seconds).
_SWEEP_EVERY = 1.0


@dataclass(frozen=True)
class Limit:
    """At most `attempts` counted attempts per `window` seconds."""

    attempts: int
    window: int

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.window < 1:
            raise ValueError("a limit needs at least one attempt and a window of a second")


class RateLimiter(Protocol):
    def acquire(self, limits: Mapping[str, Limit]) -> int | None:
        """Count one attempt against every key, unless one of them has used up its limit: then
        count nothing and return the seconds (at least 1) until that key's window closes."""
        ...

    def release(self, key: str) -> None:
        """Take back one counted attempt of the key (the guarded work turned out not to count)."""
        ...

    def reset(self, key: str) -> None:
        """Forget every attempt of the key."""
        ...


def make_limiter(redis_url: str | None, prefix: str = DEFAULT_PREFIX) -> RateLimiter:
    """Shared by every process through Redis when there is one; this process's own otherwise."""
    if redis_url:
        return RedisLimiter(redis_url, prefix)
    return InProcessLimiter()


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


@dataclass
class _Window:
    count: int
    closes: float


class InProcessLimiter:
    """Counts in this process only: right for one `metacrm serve` process without Redis (with
    several, each counts on its own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._next_sweep = 0.0

    def acquire(self, limits: Mapping[str, Limit]) -> int | None:
        now = self._clock()
        with self._lock:
            self._sweep(now)
            windows = {key: self._open(key, now) for key in limits}
            waits = [
                w.closes - now
                for key, w in windows.items()
                if w is not None and w.count >= limits[key].attempts
            ]
            if waits:
                return _whole_seconds(max(waits))
            for key, window in windows.items():
                if window is None:
                    self._windows[key] = _Window(1, now + limits[key].window)
                else:
                    window.count += 1
            return None

    def release(self, key: str) -> None:
        with self._lock:
            window = self._open(key, self._clock())
            if window is not None and window.count > 0:
                window.count -= 1

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _open(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        return window if window is not None and window.closes > now else None

    def _sweep(self, now: float) -> None:
        # Keys are made from whatever clients send, so closed windows must not pile up.
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for key in [k for k, w in self._windows.items() if w.closes <= now]:
            del self._windows[key]


# Both scripts run atomically in Redis, so processes racing on one key can't both take its last
# attempt. KEYS: the counters; ARGV: per key, its attempts and its window in milliseconds.
_ACQUIRE = """
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      ttl = tonumber(ARGV[2 * i])
      redis.call('PEXPIRE', key, ttl)
    end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return 0
"""
# DECR keeps the key's expiry; a key that has already expired stays gone.
_RELEASE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
"""


class RedisLimiter:
    """Counts in Redis, shared by every process that uses the same Redis and prefix."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)

    def acquire(self, limits: Mapping[str, Limit]) -> int | None:
        keys = [self._prefix + key for key in limits]
        args = [n for limit in limits.values() for n in (limit.attempts, limit.window * 1000)]
        wait_ms = int(self._acquire(keys=keys, args=args))
        return _whole_seconds(wait_ms / 1000) if wait_ms > 0 else None

    def release(self, key: str) -> None:
        self._release(keys=[self._prefix + key])

    def reset(self, key: str) -> None:
        self._client.delete(self._prefix + key)
