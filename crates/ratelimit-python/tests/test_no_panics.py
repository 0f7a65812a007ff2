"""Every argument of every constructor and method, given odd values: the
answer is a result or a TypeError / ValueError (or one of our errors),
never a Rust panic (pyo3's PanicException) or a crash."""

import datetime
import math

import pytest

import rate_limiter
from rate_limiter import ManualClock, RateLimiterError

ODD = [
    None, True, False, 0, 1, -1, 2**63, 2**64 - 1, 2**64, -(2**64), 10**40, -(10**40),
    0.0, -0.0, 1e-300, 5e-324, 1e300, math.inf, -math.inf, math.nan, 0.5,
    "", "x", "\ud800", "é" * 300, b"", b"\x00" * 300, bytearray(b"x"), [], (), {}, object(),
    datetime.timedelta(0), datetime.timedelta(days=10**8), datetime.timedelta(microseconds=1),
    datetime.timedelta(seconds=-1),
]
ALLOWED = (TypeError, ValueError, RateLimiterError)


def call(f, *args, **kwargs):
    try:
        return f(*args, **kwargs)
    except ALLOWED:
        return None
    except BaseException as e:  # a PanicException derives from BaseException
        pytest.fail(f"{f.__qualname__}{args}{kwargs} raised {type(e).__module__}.{type(e).__name__}: {e}")


MEMORY = ["TokenBucketMemory", "LeakyBucketMemory", "FixedWindowMemory", "SlidingWindowMemory"]


@pytest.mark.parametrize("name", MEMORY)
def test_memory_constructors(name):
    cls = getattr(rate_limiter, name)
    for v in ODD:
        call(cls, v, 1.0)
        call(cls, 10, v)
        call(cls, 10, 1.0, clock=v)
        call(cls, 10, 1.0, max_keys=v)


@pytest.mark.parametrize("name", MEMORY)
def test_memory_methods(name):
    cls = getattr(rate_limiter, name)
    clock = ManualClock()
    limiter = cls(3, 1, clock=clock)
    for v in ODD:
        for t in (0, 2**63, 2**64 - 1):
            clock.set_ns(t)
            call(limiter.allow_request, v)
            call(limiter.check, v)
            call(limiter.check, "k", v)
            call(limiter.remaining, v)
            call(limiter.reset_after, v)
            if hasattr(limiter, "reserve"):
                call(limiter.reserve, v)
                call(limiter.reserve, "k", v)
                call(limiter.reserve, "k", 1, v)


def test_clock_and_result():
    for v in ODD:
        call(ManualClock, v)
        clock = ManualClock(2**64 - 2)
        call(clock.set_ns, v)
        call(clock.advance, v)
        call(clock.advance_ns, v)
        call(rate_limiter.RateLimitResult, v, v, v)
        call(rate_limiter.RateLimitResult, True, v)


@pytest.mark.parametrize(
    "name", ["TokenBucketRedis", "LeakyBucketRedis", "FixedWindowRedis", "SlidingWindowRedis"])
def test_redis_constructors_and_methods(name, redis_url):
    cls = getattr(rate_limiter, name)
    url = redis_url.url
    options = ["prefix", "clock", "failure_policy", "circuit_breaker", "hash_keys",
               "max_key_len", "connect_timeout", "response_timeout", "max_connections"]
    for v in ODD:
        call(cls, v, 1.0, url=url)
        call(cls, 10, v, url=url)
        call(cls, 10, 1.0, v)
        call(cls, 10, 1.0, url=v if not isinstance(v, str) else "not a url")
        for option in options:
            call(cls, 10, 1.0, url=url, **{option: v})
    limiter = cls(3, 1.0, url=url, prefix="odd")
    for v in ODD:
        call(limiter.allow_request, v)
        call(limiter.check, "k", v)
        if hasattr(limiter, "reserve"):
            call(limiter.reserve, "k", 1, v)
        call(limiter.redis_key, v)
