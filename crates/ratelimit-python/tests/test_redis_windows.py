"""The window algorithms in Redis: FixedWindowRedis and SlidingWindowRedis
(and their asyncio front ends) decide every window scenario exactly, keep
the Rust crate's state (another limiter, Python or Rust, on the same prefix
counts the same window), have no `reserve`, and refuse bad arguments with a
ValueError or TypeError."""

import asyncio
import datetime
import math
import os
import subprocess

import pytest
import redis

from conftest import REPO
from test_conformance import WINDOW_FILES, load, run
from rate_limiter import (
    AsyncFixedWindowRedis,
    AsyncSlidingWindowRedis,
    FixedWindowRedis,
    InsufficientCapacity,
    ManualClock,
    SlidingWindowRedis,
)

SECOND = 1_000_000_000
# A time well inside a minute-long window (client time, from a ManualClock):
# window 1000 of 60 s, 15 s in.
T = 1000 * 60 * SECOND + 15 * SECOND
WINDOWS = [FixedWindowRedis, SlidingWindowRedis]


@pytest.mark.parametrize("name", WINDOW_FILES)
def test_redis_windows_pass_every_scenario(name, redis_client):
    # Client time: the scripts compute in nanoseconds, so both files (whole
    # microseconds and arbitrary nanoseconds) must match every field.
    scenarios = load(name)
    assert len(scenarios) >= 60
    assert {s["algorithm"] for s in scenarios} == {"fixed-window", "sliding-window"}
    events = sum(run(s, "Redis", redis_client=redis_client, prefix=f"win{s['id']}")
                 for s in scenarios)
    assert events > 1000


@pytest.mark.parametrize("cls", WINDOWS)
def test_windows_have_no_reserve(cls, redis_client):
    limiter = cls(3, 60, redis_client)
    assert not hasattr(limiter, "reserve")  # a window cannot shape
    assert not hasattr(cls, "reserve")
    assert "reserve" not in dir(limiter)
    for acls in (AsyncFixedWindowRedis, AsyncSlidingWindowRedis):
        assert not hasattr(acls, "reserve")


def test_fixed_window_in_redis(redis_client):
    clock = ManualClock(T)
    limiter = FixedWindowRedis(limit=3, window=60, redis_client=redis_client, prefix="fw",
                               clock=clock)
    assert (limiter.limit, limiter.window, limiter.prefix) == (3, 60.0, "fw")
    assert limiter.remaining("k") == 3
    assert limiter.reset_after("k") == 0.0  # nothing stored: already initial
    result = limiter.allow_request("k")
    assert (result.allowed, result.tokens_remaining, result.retry_after) == (True, 2, None)
    d = limiter.check("k", 2)
    assert (d.allowed, d.remaining, d.limit) == (True, 0, 3)
    assert d.reset_after_ns == 45 * SECOND  # the window ends 45 s later
    denied = limiter.allow_request("k")
    assert not denied.allowed and denied.tokens_remaining == 0
    assert denied.retry_after == 45.0
    assert limiter.remaining("k") == 0
    assert limiter.reset_after("k") == 45.0
    with pytest.raises(InsufficientCapacity):
        limiter.check("k", 4)  # more than a window ever holds
    clock.advance(45)  # the next window: the count resets
    assert limiter.remaining("k") == 3
    assert limiter.check("k", 3).allowed
    assert repr(limiter) == (
        f"FixedWindowRedis(limit=3, window=60.0, prefix='fw', "
        f"server='redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0')"
    )


def test_sliding_window_in_redis_weights_the_previous_window(redis_client):
    clock = ManualClock(1000 * SECOND)  # the start of window 1000 (1 s windows)
    limiter = SlidingWindowRedis(10, datetime.timedelta(seconds=1), redis_client, clock=clock)
    assert limiter.window == 1.0
    assert limiter.check("k", 10).allowed
    assert not limiter.allow_request("k").allowed
    clock.advance(1.5)  # half of the previous window still counts: 5 used
    assert limiter.remaining("k") == 5
    assert limiter.check("k", 5).allowed
    assert not limiter.check("k").allowed


def test_window_state_is_shared_by_every_limiter_on_the_prefix(redis_client):
    clock = ManualClock(T)
    first = FixedWindowRedis(5, 60, redis_client, prefix="shared", clock=clock)
    assert first.check("tenant", 3).allowed
    key = first.redis_key("tenant")
    assert key == b"shared|tenant"
    assert redis_client.exists(key) == 1
    assert 0 < redis_client.pttl(key)  # expires after the window, not before
    # Another limiter (another process's, with its own connections) on the
    # same prefix reads the window the first one wrote.
    second = FixedWindowRedis(5, 60, url=f"redis://127.0.0.1:"
                              f"{redis_client.connection_pool.connection_kwargs['port']}/0",
                              prefix="shared", clock=clock)
    assert second.remaining("tenant") == 2
    assert second.check("tenant", 2).allowed
    assert not first.allow_request("tenant").allowed
    # Another prefix is another limit.
    assert FixedWindowRedis(5, 60, redis_client, prefix="other", clock=clock).remaining(
        "tenant") == 5


@pytest.mark.parametrize("algorithm, cls", [("fixed-window", FixedWindowRedis),
                                            ("sliding-window", SlidingWindowRedis)])
def test_a_rust_process_and_python_share_one_window(algorithm, cls, redis_url):
    client = redis.Redis(host=redis_url.host, port=redis_url.port, decode_responses=True)
    clock = ManualClock(T)
    python = cls(5, 60, client, prefix="shared", clock=clock)
    assert [python.allow_request("tenant").allowed for _ in range(3)] == [True] * 3

    # The Rust peer checks the same key at the same (client) time.
    peer_args = [redis_url.url, "shared", "5", "60", "tenant", "4", algorithm, str(T)]
    built = os.environ.get("RATE_LIMITER_RUST_PEER")
    command = [built] if built else [
        "cargo", "run", "--quiet", "-p", "ratelimit-python", "--example", "rust_peer", "--"]
    peer = subprocess.run(command + peer_args, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert peer.returncode == 0, peer.stderr
    # Rust finds the 2 units Python left, takes them, is denied.
    assert peer.stdout.splitlines() == ["allowed 1", "allowed 0", "denied", "denied"]
    # And Python sees what Rust took.
    assert not python.allow_request("tenant").allowed
    assert python.remaining("tenant") == 0


def test_asyncio_windows(redis_url):
    async def main():
        client = redis.asyncio.Redis(host=redis_url.host, port=redis_url.port)
        clock = ManualClock(T)
        fixed = AsyncFixedWindowRedis(3, 60, client, prefix="aio", clock=clock)
        results = await asyncio.gather(*(fixed.allow_request("k") for _ in range(5)))
        sliding = AsyncSlidingWindowRedis(2, 60, client, prefix="aio2", clock=clock)
        decision = await sliding.check("k", 2)
        return (results, await fixed.remaining("k"), await fixed.reset_after("k"), decision,
                await sliding.remaining("k"), repr(fixed), fixed.limiter)

    results, remaining, reset_after, decision, sliding_remaining, shown, sync = asyncio.run(main())
    assert sorted(r.allowed for r in results) == [False, False, True, True, True]
    assert remaining == 0 and reset_after == 45.0
    assert decision.allowed and sliding_remaining == 0
    assert shown.startswith("AsyncFixedWindowRedis(limit=3, window=60.0, prefix='aio'")
    assert isinstance(sync, FixedWindowRedis)


@pytest.mark.parametrize("cls", WINDOWS)
@pytest.mark.parametrize(
    "args, error, message",
    [
        ((0, 60), ValueError, "limit must be at least 1"),
        ((-1, 60), ValueError, "limit must be at least 1"),
        ((10, 0), ValueError, "window must be at least 1 ns"),
        ((10, -1), ValueError, "window must not be negative"),
        ((10, math.nan), ValueError, "window must not be NaN"),
        ((10, math.inf), ValueError, "window is longer than 2\\*\\*64"),
        ((10, 10**12), ValueError, "window is longer than 2\\*\\*64"),
        ((10, "60s"), TypeError, "window must be a number of seconds or a datetime.timedelta"),
        (("10", 60), TypeError, "limit"),
    ],
)
def test_bad_window_arguments_raise_clear_errors(cls, args, error, message, redis_client):
    with pytest.raises(error, match=message):
        cls(*args, redis_client)


def test_windows_the_scripts_cannot_run_exactly_are_value_errors(redis_client):
    # (limit + 1) x window beyond 2**53 ns: the sliding script's counts
    # would lose precision in Lua's doubles.
    with pytest.raises(ValueError, match="2\\^53"):
        SlidingWindowRedis(3000, 3600, redis_client)
    assert SlidingWindowRedis(2000, 3600, redis_client).limit == 2000
    # A 7 ns window under the server's time (whole microseconds).
    with pytest.raises(ValueError, match="gcd"):
        FixedWindowRedis(3, 7e-9, redis_client)
    # Under client time it runs.
    assert FixedWindowRedis(3, 7e-9, redis_client, clock=ManualClock(10**9)).allow_request(
        "k").allowed
    with pytest.raises(ValueError, match="2\\^32"):
        SlidingWindowRedis(2**32, 60, redis_client)


@pytest.mark.parametrize("cls", WINDOWS)
def test_bad_call_and_option_arguments(cls, redis_client):
    limiter = cls(5, 60, redis_client)
    with pytest.raises(ValueError, match="cost must be at least 0, got -1"):
        limiter.check("k", -1)
    with pytest.raises(TypeError, match="cost must be an int, not float"):
        limiter.check("k", 1.0)
    with pytest.raises(ValueError, match="failure_policy"):
        cls(5, 60, redis_client, failure_policy="sometimes")
    with pytest.raises(TypeError, match="redis_client"):
        cls(5, 60)


@pytest.mark.parametrize("cls", WINDOWS)
def test_windows_follow_the_failure_policy_when_redis_is_down(cls):
    from conftest import free_port

    client = redis.Redis(host="127.0.0.1", port=free_port())
    with pytest.raises(redis.exceptions.ConnectionError):
        cls(2, 60, client, connect_timeout=0.2).allow_request("k")
    denied = cls(2, 60, client, failure_policy="deny", connect_timeout=0.2).check("k")
    assert (denied.allowed, denied.reason) == (False, "fail_closed")
    allowed = cls(2, 60, client, failure_policy="allow", connect_timeout=0.2).check("k")
    assert (allowed.allowed, allowed.reason) == (True, "fail_open")
    local = cls(2, 60, client, failure_policy="local", connect_timeout=0.2).check("k", 2)
    assert (local.allowed, local.reason) == (True, "fallback")


@pytest.mark.parametrize("cls", WINDOWS)
def test_a_window_quota_change_reaches_every_limiter_on_the_prefix(cls, redis_client):
    clock = ManualClock(T)
    port = redis_client.connection_pool.connection_kwargs["port"]
    first = cls(5, 60, redis_client, prefix="wq", clock=clock)
    second = cls(5, 60, url=f"redis://127.0.0.1:{port}/0", prefix="wq", clock=clock)
    assert first.check("k", 4).allowed
    first.reconfigure(8, 60)  # same window: the count of 4 is kept
    assert (first.limit, first.window) == (8, 60.0)
    assert first.remaining("k") == 4
    # The other limiter meets the key decided under the change: it adopts
    # it, and never decides the key with its older limit of 5.
    d = second.check("k", 4)
    assert d.allowed and d.limit == 8 and d.remaining == 0
    first.reconfigure(8, 30)  # a new window: every key afresh
    assert first.remaining("k") == 8
    with pytest.raises(ValueError):
        first.reconfigure(0, 30)
    assert (first.limit, first.window) == (8, 30.0)


def test_asyncio_window_quota_change(redis_url):
    async def main():
        client = redis.asyncio.Redis(host=redis_url.host, port=redis_url.port)
        limiter = AsyncFixedWindowRedis(2, 60, client, prefix="awq", clock=ManualClock(T))
        await limiter.check("k", 2)
        await limiter.reconfigure(3, 60)
        left = await limiter.remaining("k")
        await client.aclose()
        return left

    assert asyncio.run(main()) == 1
