"""The memory limiters through the Python API: the contract's answers on a
manual clock, every algorithm, keys, and a clear error for every bad
argument (never a panic)."""

import datetime
import math

import pytest

from rate_limiter import (
    FixedWindowMemory,
    InsufficientCapacity,
    LeakyBucketMemory,
    ManualClock,
    RateLimiterError,
    SlidingWindowMemory,
    TokenBucketMemory,
)

SECOND = 1_000_000_000


def test_token_bucket_refills_at_its_rate():
    clock = ManualClock()
    limiter = TokenBucketMemory(capacity=10, refill_rate=2.0, clock=clock)
    assert [limiter.allow_request("u").allowed for _ in range(11)] == [True] * 10 + [False]
    denied = limiter.check("u")
    assert denied.retry_after_ns == SECOND // 2
    clock.advance_ns(SECOND // 2 - 1)
    assert not limiter.check("u")  # not one nanosecond early
    clock.advance_ns(1)
    assert limiter.check("u").allowed
    assert limiter.remaining("u") == 0
    clock.advance(5)
    assert limiter.remaining("u") == 10
    assert limiter.reset_after("u") == 0.0


def test_leaky_bucket_spaces_reservations_exactly_one_interval_apart():
    clock = ManualClock()
    limiter = LeakyBucketMemory(capacity=3, leak_rate=4.0, clock=clock)
    waits = [limiter.reserve("q").wait_ns for _ in range(3)]
    assert waits == [0, SECOND // 4, SECOND // 2]
    full = limiter.reserve("q")
    assert not full.admitted and full.retry_after_ns == SECOND // 4
    # check polices like a token bucket of the same quota
    token = TokenBucketMemory(3, 4.0, clock=clock)
    leaky = LeakyBucketMemory(3, 4.0, clock=clock)
    for _ in range(5):
        assert token.check("a") == leaky.check("a")


def test_token_bucket_reservation_borrows_from_the_future():
    clock = ManualClock()
    limiter = TokenBucketMemory(capacity=2, refill_rate=1.0, clock=clock)
    assert limiter.reserve("k", cost=2).wait_ns == 0
    r = limiter.reserve("k", cost=2, max_wait=datetime.timedelta(seconds=2))
    assert r.admitted and r.wait_ns == 2 * SECOND
    assert limiter.remaining("k") == 0
    assert not limiter.check("k", cost=0)  # in debt: even a zero cost waits
    assert limiter.reserve("k", max_wait=None).wait_ns == 3 * SECOND


def test_fixed_window_resets_at_the_window_end():
    clock = ManualClock()
    limiter = FixedWindowMemory(limit=3, window=60, clock=clock)
    assert [limiter.check("k").allowed for _ in range(4)] == [True, True, True, False]
    clock.set_ns(59 * SECOND)
    d = limiter.check("k")
    assert not d and d.retry_after_ns == SECOND and d.reset_after_ns == SECOND
    clock.set_ns(60 * SECOND)
    assert limiter.check("k", cost=3).allowed
    assert (limiter.limit, limiter.window) == (3, 60.0)
    assert not hasattr(limiter, "reserve")  # a window cannot shape


def test_sliding_window_weights_the_previous_window():
    clock = ManualClock()
    limiter = SlidingWindowMemory(limit=10, window=1.0, clock=clock)
    assert limiter.check("k", cost=10).allowed
    clock.set_ns(SECOND + SECOND // 2)  # half of the previous window still counts: 5 used
    assert limiter.remaining("k") == 5
    assert limiter.check("k", cost=5).allowed
    assert not limiter.check("k")
    assert not hasattr(limiter, "reserve")


def test_str_and_bytes_name_one_key_and_other_types_are_refused():
    limiter = TokenBucketMemory(1, 1e-6)
    assert limiter.allow_request("clé").allowed
    assert not limiter.allow_request("clé".encode()).allowed
    assert limiter.allow_request("").allowed  # the empty key is a key
    assert limiter.allow_request(b"\x00\xff").allowed
    for bad in [1, 1.5, None, ("a",), ["a"], bytearray(b"a")]:
        with pytest.raises(TypeError, match="key must be str or bytes"):
            limiter.allow_request(bad)
    with pytest.raises(UnicodeEncodeError):
        limiter.allow_request("\ud800")  # a lone surrogate has no UTF-8 form


def test_cost_above_capacity_raises_insufficient_capacity():
    limiter = TokenBucketMemory(5, 1.0)
    with pytest.raises(InsufficientCapacity) as e:
        limiter.check("k", cost=6)
    assert isinstance(e.value, ValueError) and isinstance(e.value, RateLimiterError)
    assert (e.value.cost, e.value.capacity) == (6, 5)
    assert str(e.value) == "cost 6 exceeds the capacity 5: the request can never succeed"
    with pytest.raises(InsufficientCapacity):
        limiter.reserve("k", cost=6)
    with pytest.raises(InsufficientCapacity):
        SlidingWindowMemory(2, 1).check("k", 3)
    assert limiter.remaining("k") == 5  # nothing consumed


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((0, 1.0), ValueError, "capacity must be at least 1, got 0"),
        ((-1, 1.0), ValueError, "capacity must be at least 1, got -1"),
        ((2**64, 1.0), ValueError, "capacity must be below 2\\*\\*64"),
        ((1.0, 1.0), TypeError, "capacity must be an int, not float"),
        ((True, 1.0), TypeError, "capacity must be an int, not bool"),
        (("10", 1.0), TypeError, "capacity must be an int, not str"),
        ((None, 1.0), TypeError, "capacity must be an int, not NoneType"),
        ((10, 0), ValueError, "invalid refill_rate=0: rate must be a finite number greater than zero"),
        ((10, -2.0), ValueError, "invalid refill_rate=-2.0"),
        ((10, math.nan), ValueError, "invalid refill_rate=nan"),
        ((10, math.inf), ValueError, "invalid refill_rate=inf"),
        ((10, 1e10), ValueError, "rate is above one unit per nanosecond"),
        ((10, 1e-300), ValueError, "rate is below one unit per 2\\^64 nanoseconds"),
        ((10**15, 1e-3), ValueError, "invalid capacity=1000000000000000: capacity times"),
        ((10, "2.0"), TypeError, "refill_rate must be a number"),
        ((10, None), TypeError, "refill_rate must be a number"),
        ((10, False), TypeError, "refill_rate must be a number"),
    ],
)
def test_bad_bucket_arguments_raise_clear_errors(args, error, message):
    with pytest.raises(error, match=message):
        TokenBucketMemory(*args)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((0, 60), ValueError, "limit must be at least 1"),
        ((10, 0), ValueError, "window must be at least 1 ns"),
        ((10, -1), ValueError, "window must not be negative"),
        ((10, math.nan), ValueError, "window must not be NaN"),
        ((10, math.inf), ValueError, "window is longer than 2\\*\\*64"),
        ((10, 10**12), ValueError, "window is longer than 2\\*\\*64"),
        ((10, "60s"), TypeError, "window must be a number of seconds or a datetime.timedelta"),
        ((2**32, 60), ValueError, "limit must be below 2\\^32"),
    ],
)
def test_bad_window_arguments_raise_clear_errors(args, error, message):
    with pytest.raises(error, match=message):
        SlidingWindowMemory(*args)


def test_bad_call_arguments_raise_clear_errors():
    limiter = TokenBucketMemory(5, 1.0)
    with pytest.raises(ValueError, match="cost must be at least 0, got -1"):
        limiter.check("k", -1)
    with pytest.raises(TypeError, match="cost must be an int, not float"):
        limiter.check("k", 1.0)
    with pytest.raises(ValueError, match="cost must be below 2\\*\\*64"):
        limiter.check("k", 2**64)
    with pytest.raises(InsufficientCapacity):
        limiter.check("k", 2**64 - 1)
    with pytest.raises(ValueError, match="max_wait must not be negative"):
        limiter.reserve("k", 1, -0.5)
    with pytest.raises(TypeError, match="max_wait must be a number of seconds"):
        limiter.reserve("k", 1, "1s")
    assert limiter.reserve("k", 1, math.inf).admitted  # an infinite wait is no bound
    with pytest.raises(TypeError, match="clock must be a rate_limiter.ManualClock"):
        TokenBucketMemory(5, 1.0, clock=object())
    with pytest.raises(ValueError, match="max_keys must be at least 1"):
        TokenBucketMemory(5, 1.0, max_keys=0)
    with pytest.raises(TypeError):
        TokenBucketMemory(5, refill_rate=1.0, leak_rate=1.0)


def test_float_seconds_are_read_as_their_decimal():
    clock = ManualClock()
    assert FixedWindowMemory(1, 0.1, clock=clock).check("k").reset_after_ns == 100_000_000
    assert FixedWindowMemory(1, 1.0000000005, clock=clock).check("k").reset_after_ns == 1_000_000_001
    assert FixedWindowMemory(1, datetime.timedelta(milliseconds=1500), clock=clock).window == 1.5
    with pytest.raises(ValueError, match="window must be at least 1 ns"):
        FixedWindowMemory(1, 1e-10)


def test_time_going_backwards_never_admits_more():
    clock = ManualClock(10 * SECOND)
    limiter = TokenBucketMemory(2, 1.0, clock=clock)
    assert limiter.check("k", 2).allowed
    clock.set_ns(0)
    assert not limiter.check("k")
    clock.set_ns(2**64 - 1)
    at_the_end = limiter.check("k", 2)  # saturates, never wraps or panics
    assert at_the_end.remaining <= 2
    with pytest.raises(ValueError):
        clock.set_ns(2**64)
    clock.advance(10)  # saturates at the top
    assert clock.now_ns == 2**64 - 1


def test_a_full_key_table_denies_new_keys_instead_of_forgetting_live_ones():
    clock = ManualClock()
    limiter = TokenBucketMemory(1, 1.0, clock=clock, max_keys=64)
    admitted = sum(limiter.check(f"k{i}").allowed for i in range(200))
    # Time stands still: no key can be dropped, so exactly the bound is held.
    assert admitted == 64 and limiter.keys_held == 64
    refused = [limiter.check(f"x{i}") for i in range(200)]
    full = [d for d in refused if d.reason == "key_table_full"]
    assert full and all(not d.allowed and d.retry_after_ns <= SECOND for d in full)
    assert limiter.keys_held <= 64
    clock.advance(1)  # every key is back to full: all slots free again
    assert limiter.check("fresh").allowed


def test_repr_and_attributes():
    t = TokenBucketMemory(10, 2)
    assert repr(t) == "TokenBucketMemory(capacity=10, refill_rate=2.0)"
    assert (t.capacity, t.refill_rate) == (10, 2.0)
    l = LeakyBucketMemory(5, 0.5)
    assert (l.capacity, l.leak_rate) == (5, 0.5)
    assert repr(SlidingWindowMemory(100, 60)) == "SlidingWindowMemory(limit=100, window=60.0)"
    assert repr(ManualClock(5)) == "ManualClock(now_ns=5)"


def test_reconfigure_keeps_what_each_key_used_by_default():
    clock = ManualClock()
    limiter = TokenBucketMemory(capacity=10, refill_rate=1.0, clock=clock)
    assert limiter.check("u", cost=4).allowed
    limiter.reconfigure(20, 2.0)
    assert limiter.remaining("u") == 16  # 4 used stay used, now of 20
    assert limiter.remaining("fresh") == 20
    assert (limiter.capacity, limiter.refill_rate) == (20, 2.0)
    assert repr(limiter) == "TokenBucketMemory(capacity=20, refill_rate=2.0)"


@pytest.mark.parametrize(
    "strategy, left",
    [("keep-consumed", 16), ("keep-available", 6), ("proportional", 12), ("reset", 20)],
)
def test_reconfigure_strategies(strategy, left):
    clock = ManualClock()
    limiter = TokenBucketMemory(capacity=10, refill_rate=1.0, clock=clock)
    assert limiter.check("u", cost=4).allowed
    limiter.reconfigure(20, 2.0, strategy=strategy)
    assert limiter.remaining("u") == left


def test_a_tighter_quota_gives_no_free_burst():
    clock = ManualClock()
    limiter = LeakyBucketMemory(capacity=10, leak_rate=10.0, clock=clock)
    assert limiter.check("u", cost=8).allowed
    # The 8 units in use stay in use, now against 4 draining at 1/s: one
    # more unit waits until 5 of them have drained.
    limiter.reconfigure(4, 1.0)
    d = limiter.check("u")
    assert not d.allowed and d.retry_after_ns == 5 * SECOND
    clock.advance(5)
    assert limiter.check("u").allowed


def test_reconfigure_refuses_bad_input_and_keeps_the_quota():
    limiter = TokenBucketMemory(capacity=10, refill_rate=1.0, clock=ManualClock())
    with pytest.raises(ValueError, match="strategy"):
        limiter.reconfigure(20, 2.0, strategy="generous")
    with pytest.raises(ValueError, match="capacity"):
        limiter.reconfigure(0, 2.0)
    with pytest.raises(ValueError, match="refill_rate"):
        limiter.reconfigure(10, -1.0)
    assert (limiter.capacity, limiter.refill_rate) == (10, 1.0)


def test_a_window_keeps_its_counts_under_a_new_limit_and_restarts_under_a_new_window():
    clock = ManualClock()
    limiter = FixedWindowMemory(limit=3, window=60, clock=clock)
    assert limiter.check("k", cost=3).allowed
    limiter.reconfigure(5, 60)
    assert limiter.remaining("k") == 2
    limiter.reconfigure(5, 30)
    assert limiter.remaining("k") == 5
    assert (limiter.limit, limiter.window) == (5, 30.0)
    sliding = SlidingWindowMemory(limit=10, window=1.0, clock=clock)
    assert sliding.check("k", cost=10).allowed
    sliding.reconfigure(12, 1.0)
    assert sliding.remaining("k") == 2


def test_a_key_on_its_own_quota():
    clock = ManualClock()
    limiter = TokenBucketMemory(capacity=2, refill_rate=1.0, clock=clock)
    assert limiter.check("alice", cost=2).allowed
    assert not limiter.check("alice")
    # Alice upgrades: her 2 units stay used, now of 10.
    d = limiter.check_with_quota("alice", 10, 10.0)
    assert d.allowed and d.remaining == 7 and d.limit == 10
    assert limiter.check("bob", cost=2).allowed and not limiter.check("bob")
    r = limiter.reserve_with_quota("carol", 5, 1.0, cost=5)
    assert r.admitted and r.wait_ns == 0
    with pytest.raises(InsufficientCapacity):
        limiter.check_with_quota("alice", 10, 1.0, cost=11)
