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

from rate_limiter._errors import InsufficientCapacity, RateLimiterError
from rate_limiter._native import (
    DEFAULT_MAX_KEYS,
    Decision,
    FixedWindowMemory,
    LeakyBucketMemory,
    ManualClock,
    RateLimitResult,
    Reservation,
    SlidingWindowMemory,
    TokenBucketMemory,
)

__all__ = [
    "DEFAULT_MAX_KEYS",
    "Decision",
    "FixedWindowMemory",
    "InsufficientCapacity",
    "LeakyBucketMemory",
    "ManualClock",
    "RateLimitResult",
    "RateLimiterError",
    "Reservation",
    "SlidingWindowMemory",
    "TokenBucketMemory",
]
