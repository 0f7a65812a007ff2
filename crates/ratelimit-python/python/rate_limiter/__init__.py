"""Rate limiting for Python services: token and leaky buckets (and fixed and
sliding windows), in this process or shared through Redis, on an exact,
lock-free Rust core.

    from rate_limiter import TokenBucketMemory
    limiter = TokenBucketMemory(capacity=10, refill_rate=2.0)
    result = limiter.allow_request("user123")
    if result.allowed:
        print(f"Request allowed! {result.tokens_remaining} tokens remaining")
    else:
        print(f"Rate limited! Retry after {result.retry_after:.2f} seconds")
"""

import os as _os

from rate_limiter._errors import (
    InsufficientCapacity,
    KeyTooLong,
    RateLimiterError,
    RedisAuthenticationError,
    RedisConfigurationError,
    RedisConnectionError,
    RedisLimitError,
    RedisResponseError,
    RedisTimeoutError,
)
from rate_limiter._native import (
    DEFAULT_MAX_KEYS,
    HAS_TLS,
    Decision,
    FixedWindowMemory,
    FixedWindowRedis,
    LeakyBucketMemory,
    LeakyBucketRedis,
    ManualClock,
    RateLimitResult,
    Reservation,
    SlidingWindowMemory,
    SlidingWindowRedis,
    TokenBucketMemory,
    TokenBucketRedis,
    __version__,
    _after_fork_in_child,
)
from rate_limiter._asyncio import (
    AsyncFixedWindowRedis,
    AsyncLeakyBucketRedis,
    AsyncSlidingWindowRedis,
    AsyncTokenBucketRedis,
)

# A forked child (gunicorn, multiprocessing) opens its own Redis connections
# instead of sharing its parent's sockets.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "AsyncFixedWindowRedis",
    "AsyncLeakyBucketRedis",
    "AsyncSlidingWindowRedis",
    "AsyncTokenBucketRedis",
    "DEFAULT_MAX_KEYS",
    "Decision",
    "FixedWindowMemory",
    "FixedWindowRedis",
    "HAS_TLS",
    "InsufficientCapacity",
    "KeyTooLong",
    "LeakyBucketMemory",
    "LeakyBucketRedis",
    "ManualClock",
    "RateLimitResult",
    "RateLimiterError",
    "RedisAuthenticationError",
    "RedisConfigurationError",
    "RedisConnectionError",
    "RedisLimitError",
    "RedisResponseError",
    "RedisTimeoutError",
    "Reservation",
    "SlidingWindowMemory",
    "SlidingWindowRedis",
    "TokenBucketMemory",
    "TokenBucketRedis",
]
