"""asyncio front ends of the Redis limiters: the same limiter, its calls run
on a worker thread (``asyncio.to_thread``) so that the event loop never
waits on Redis. The Redis round trip itself runs without the GIL.

Each call costs a hand-over to the loop's default thread pool (tens of
microseconds) and holds one of its threads for the round trip, so the
calls in flight at once are bounded by that pool's size (and by
``max_connections``, 16 by default).
"""

import asyncio

from rate_limiter._native import (
    FixedWindowRedis,
    LeakyBucketRedis,
    SlidingWindowRedis,
    TokenBucketRedis,
)

_to_thread = asyncio.to_thread


class _AsyncRedis:
    _sync_class = None

    def __init__(self, *args, **kwargs):
        self._limiter = self._sync_class(*args, **kwargs)

    @property
    def limiter(self):
        """The blocking limiter behind this one (same state, same options)."""
        return self._limiter

    async def allow_request(self, key):
        """``await``-able ``allow_request``: a ``RateLimitResult``."""
        return await _to_thread(self._limiter.allow_request, key)

    async def check(self, key, cost=1):
        """``await``-able ``check``: a ``Decision``."""
        return await _to_thread(self._limiter.check, key, cost)

    async def remaining(self, key):
        """``await``-able ``remaining``."""
        return await _to_thread(self._limiter.remaining, key)

    async def reset_after(self, key):
        """``await``-able ``reset_after``."""
        return await _to_thread(self._limiter.reset_after, key)

    def __repr__(self):
        return "Async" + repr(self._limiter)


class _AsyncBucketRedis(_AsyncRedis):
    async def reserve(self, key, cost=1, max_wait=None):
        """``await``-able ``reserve``: a ``Reservation``."""
        return await _to_thread(self._limiter.reserve, key, cost, max_wait)

    async def reconfigure(self, capacity, rate, *, strategy=None):
        """``await``-able ``reconfigure``: every key's quota on the prefix."""
        return await _to_thread(self._limiter.reconfigure, capacity, rate, strategy=strategy)

    async def check_with_quota(self, key, capacity, rate, cost=1):
        """``await``-able ``check_with_quota``: a ``Decision``."""
        return await _to_thread(self._limiter.check_with_quota, key, capacity, rate, cost)

    async def reserve_with_quota(self, key, capacity, rate, cost=1, max_wait=None):
        """``await``-able ``reserve_with_quota``: a ``Reservation``."""
        return await _to_thread(
            self._limiter.reserve_with_quota, key, capacity, rate, cost, max_wait
        )


class AsyncTokenBucketRedis(_AsyncBucketRedis):
    """``TokenBucketRedis`` for asyncio code: the same arguments (a
    ``redis.asyncio.Redis`` client works as well as a ``redis.Redis``), and
    ``await limiter.allow_request(key)``."""

    _sync_class = TokenBucketRedis


class AsyncLeakyBucketRedis(_AsyncBucketRedis):
    """``LeakyBucketRedis`` for asyncio code (see ``AsyncTokenBucketRedis``)."""

    _sync_class = LeakyBucketRedis


class _AsyncWindowRedis(_AsyncRedis):
    async def reconfigure(self, limit, window):
        """``await``-able ``reconfigure``: every key's quota on the prefix."""
        return await _to_thread(self._limiter.reconfigure, limit, window)


class AsyncFixedWindowRedis(_AsyncWindowRedis):
    """``FixedWindowRedis`` for asyncio code (see ``AsyncTokenBucketRedis``);
    like it, no ``reserve``."""

    _sync_class = FixedWindowRedis


class AsyncSlidingWindowRedis(_AsyncWindowRedis):
    """``SlidingWindowRedis`` for asyncio code (see ``AsyncTokenBucketRedis``);
    like it, no ``reserve``."""

    _sync_class = SlidingWindowRedis
