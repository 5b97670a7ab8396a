"""The in-process rate limiter (a clock we move by hand) and the sign-in's limit keys."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacrm.platform.ratelimit import InProcessLimiter, Limit, make_limiter
from metacrm.platform.signin import account_limit_key, address_limit_key

THREE_PER_MINUTE = Limit(attempts=3, window=60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> InProcessLimiter:
    return InProcessLimiter(clock)


def test_attempts_up_to_the_limit_are_counted_and_the_next_waits_for_the_window(
    limiter: InProcessLimiter, clock: Clock
) -> None:
    assert [limiter.acquire({"k": THREE_PER_MINUTE}) for _ in range(3)] == [None] * 3
    clock.now += 20.5
    assert limiter.acquire({"k": THREE_PER_MINUTE}) == 40  # the window opened 20.5 s ago
    clock.now += 39
    assert limiter.acquire({"k": THREE_PER_MINUTE}) == 1  # never 0: Retry-After is at least 1
    clock.now += 0.5
    assert limiter.acquire({"k": THREE_PER_MINUTE}) is None  # a new window


def test_keys_are_counted_apart(limiter: InProcessLimiter) -> None:
    for _ in range(3):
        limiter.acquire({"a": THREE_PER_MINUTE})
    assert limiter.acquire({"a": THREE_PER_MINUTE}) is not None
    assert limiter.acquire({"b": THREE_PER_MINUTE}) is None


def test_a_refused_attempt_counts_against_none_of_its_keys(limiter: InProcessLimiter) -> None:
    """An attempt blocked by its address must not use up the account's attempts (or someone
    else could lock an account out from a place that is already blocked)."""
    one = Limit(attempts=1, window=60)
    assert limiter.acquire({"address": one}) is None
    for _ in range(5):
        assert limiter.acquire({"account": THREE_PER_MINUTE, "address": one}) == 60
    assert [limiter.acquire({"account": THREE_PER_MINUTE}) for _ in range(4)] == [
        None,
        None,
        None,
        60,
    ]


def test_release_gives_one_attempt_back_and_reset_forgets_them_all(
    limiter: InProcessLimiter,
) -> None:
    for _ in range(3):
        limiter.acquire({"k": THREE_PER_MINUTE})
    limiter.release("k")
    assert limiter.acquire({"k": THREE_PER_MINUTE}) is None
    assert limiter.acquire({"k": THREE_PER_MINUTE}) is not None
    limiter.reset("k")
    assert [limiter.acquire({"k": THREE_PER_MINUTE}) for _ in range(4)][-2:] == [None, 60]


def test_release_of_an_unknown_or_closed_window_changes_nothing(
    limiter: InProcessLimiter, clock: Clock
) -> None:
    limiter.release("never-seen")
    limiter.acquire({"k": THREE_PER_MINUTE})
    clock.now += 61
    limiter.release("k")
    assert [limiter.acquire({"k": THREE_PER_MINUTE}) for _ in range(4)] == [None, None, None, 60]


def test_closed_windows_are_swept_so_keys_from_clients_do_not_pile_up(
    limiter: InProcessLimiter, clock: Clock
) -> None:
    for n in range(100):
        limiter.acquire({f"k{n}": THREE_PER_MINUTE})
    clock.now += 61
    limiter.acquire({"fresh": THREE_PER_MINUTE})
    assert set(limiter._windows) == {"fresh"}


def test_threads_racing_on_one_key_get_exactly_the_limit() -> None:
    limiter = InProcessLimiter()
    limit = Limit(attempts=7, window=60)
    allowed: list[bool] = []
    start = threading.Barrier(16)

    def attempt() -> None:
        start.wait()
        for _ in range(5):
            allowed.append(limiter.acquire({"k": limit}) is None)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 7 and len(allowed) == 80


def test_without_redis_the_limiter_is_in_process() -> None:
    assert isinstance(make_limiter(None), InProcessLimiter)


@pytest.mark.parametrize(("attempts", "window"), [(0, 60), (3, 0), (-1, 60)])
def test_a_limit_needs_an_attempt_and_a_window(attempts: int, window: int) -> None:
    with pytest.raises(ValueError):
        Limit(attempts, window)


# ---- the sign-in's keys --------------------------------------------------------------------


def test_an_account_key_is_the_normalised_email_hashed() -> None:
    key = account_limit_key("Ann@Example.com ")
    assert key == account_limit_key("ann@example.com")
    assert "ann" not in key and key != account_limit_key("bob@example.com")


@given(st.text(max_size=300))
def test_any_email_gives_a_bounded_key(email: str) -> None:
    assert len(account_limit_key(email)) < 100


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
    ids=["ipv6-same-64", "ipv4-mapped"],
)
def test_addresses_one_client_controls_share_a_key(a: str, b: str) -> None:
    assert address_limit_key(a) == address_limit_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("2001:db8:1:2::1", "2001:db8:1:3::1"), ("192.0.2.7", "192.0.2.8")],
    ids=["ipv6-other-64", "ipv4"],
)
def test_other_clients_get_other_keys(a: str, b: str) -> None:
    assert address_limit_key(a) != address_limit_key(b)


def test_a_client_without_an_ip_address_still_has_a_bounded_key() -> None:
    assert address_limit_key(None) == address_limit_key("")
    assert len(address_limit_key("x" * 10_000)) < 150
