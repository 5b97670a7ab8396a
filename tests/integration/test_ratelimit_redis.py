"""The Redis rate limiter against a real redis-server: counts shared by every process, exact
under races, windows that close, and the same answers as the in-process limiter."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import RedisServer

from metacrm.platform.ratelimit import InProcessLimiter, Limit, RedisLimiter, make_limiter

LIMIT = Limit(attempts=3, window=600)


def fresh_prefix() -> str:
    """Tests share one Redis: each counts under its own prefix."""
    return f"test:{secrets.token_hex(6)}:"


def test_with_redis_the_limiter_counts_in_redis(redis_server: RedisServer) -> None:
    assert isinstance(make_limiter(redis_server.url), RedisLimiter)


def test_attempts_counted_by_one_client_limit_another(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    first, second = RedisLimiter(redis_server.url, prefix), RedisLimiter(redis_server.url, prefix)
    assert [first.acquire({"k": LIMIT}) for _ in range(3)] == [None] * 3
    wait = second.acquire({"k": LIMIT})
    assert wait is not None and 590 <= wait <= 600
    second.reset("k")
    assert first.acquire({"k": LIMIT}) is None


def test_processes_racing_on_one_key_get_exactly_the_limit(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    script = (
        "import sys\n"
        "from metacrm.platform.ratelimit import Limit, RedisLimiter\n"
        "limiter = RedisLimiter(sys.argv[1], sys.argv[2])\n"
        "print(sum(limiter.acquire({'k': Limit(7, 600)}) is None for _ in range(10)))\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, redis_server.url, prefix],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        for _ in range(4)
    ]
    allowed = [int(p.communicate(timeout=60)[0]) for p in processes]
    assert sum(allowed) == 7


def test_threads_racing_on_one_key_get_exactly_the_limit(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    allowed: list[bool] = []
    start = threading.Barrier(8)

    def attempt() -> None:
        limiter = RedisLimiter(redis_server.url, prefix)
        start.wait()
        for _ in range(5):
            allowed.append(limiter.acquire({"k": Limit(11, 600)}) is None)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 11 and len(allowed) == 40


def test_a_window_closes_after_its_seconds(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, fresh_prefix())
    one_second = Limit(attempts=1, window=1)
    assert limiter.acquire({"k": one_second}) is None
    assert limiter.acquire({"k": one_second}) == 1
    time.sleep(1.1)
    assert limiter.acquire({"k": one_second}) is None


def test_a_refused_attempt_counts_against_none_of_its_keys(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(redis_server.url, fresh_prefix())
    one = Limit(attempts=1, window=600)
    assert limiter.acquire({"address": one}) is None
    for _ in range(5):
        assert limiter.acquire({"account": LIMIT, "address": one}) is not None
    assert [limiter.acquire({"account": LIMIT}) is None for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_release_after_the_window_closed_leaves_nothing_behind(
    redis_server: RedisServer,
) -> None:
    prefix = fresh_prefix()
    limiter = RedisLimiter(redis_server.url, prefix)
    limiter.acquire({"k": Limit(attempts=1, window=1)})
    time.sleep(1.1)
    limiter.release("k")
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists(prefix + "k") == 0


def test_every_counter_expires(redis_server: RedisServer) -> None:
    prefix = fresh_prefix()
    limiter = RedisLimiter(redis_server.url, prefix)
    limiter.acquire({"a": LIMIT, "b": Limit(2, 30)})
    limiter.release("a")
    client = redis.Redis.from_url(redis_server.url)
    assert 0 < client.pttl(prefix + "a") <= 600_000
    assert 0 < client.pttl(prefix + "b") <= 30_000


# Operations on a few keys: ("acquire", keys) | ("release", key) | ("reset", key).
KEYS = ["a", "b", "c"]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.lists(st.sampled_from(KEYS), min_size=1, unique=True)),
        st.tuples(st.just("release"), st.sampled_from(KEYS)),
        st.tuples(st.just("reset"), st.sampled_from(KEYS)),
    ),
    max_size=30,
)
LIMITS = {"a": Limit(2, 600), "b": Limit(3, 600), "c": Limit(1, 600)}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_redis_and_in_process_limiters_give_the_same_answers(
    redis_server: RedisServer, operations: list[tuple[str, object]]
) -> None:
    shared = RedisLimiter(redis_server.url, fresh_prefix())
    local = InProcessLimiter()
    for op, arg in operations:
        if op == "acquire":
            limits = {k: LIMITS[k] for k in arg}  # type: ignore[union-attr]
            assert (shared.acquire(limits) is None) == (local.acquire(limits) is None)
        else:
            getattr(shared, op)(arg)
            getattr(local, op)(arg)


@pytest.mark.parametrize("op", ["release", "reset"])
def test_release_and_reset_of_a_key_never_seen_change_nothing(
    redis_server: RedisServer, op: str
) -> None:
    limiter = RedisLimiter(redis_server.url, fresh_prefix())
    getattr(limiter, op)("k")
    assert [limiter.acquire({"k": LIMIT}) is None for _ in range(4)] == [True] * 3 + [False]
