"""The exceptions of rate_limiter.

A denial is not an exception: it is a result whose ``allowed`` is False.
Exceptions are for what the caller must fix (a bad argument, a cost that can
never be admitted) or cannot control (Redis is unreachable).
"""


class RateLimiterError(Exception):
    """Base class of the exceptions this package defines."""


class InsufficientCapacity(RateLimiterError, ValueError):
    """The cost exceeds the limiter's capacity: such a request can never be
    admitted, however long the caller waits. Nothing was consumed."""

    def __init__(self, cost: int, capacity: int) -> None:
        super().__init__(cost, capacity)
        self.cost = cost
        self.capacity = capacity

    def __str__(self) -> str:
        return (
            f"cost {self.cost} exceeds the capacity {self.capacity}: "
            "the request can never succeed"
        )


class KeyTooLong(RateLimiterError, ValueError):
    """A Redis limiter's key is longer than its ``max_key_len`` (256 bytes by
    default): use shorter keys, raise the bound, or store keys hashed
    (``hash_keys=secret``). Nothing was sent to Redis."""


try:  # Redis failures are also redis-py's exceptions, for existing handlers.
    from redis import exceptions as _redis_exceptions

    _ConnectionBase = _redis_exceptions.ConnectionError
    _TimeoutBase = _redis_exceptions.TimeoutError
    _AuthenticationBase = _redis_exceptions.AuthenticationError
    _ResponseBase = _redis_exceptions.ResponseError
except ImportError:  # the memory classes need no redis-py
    _ConnectionBase = ConnectionError
    _TimeoutBase = TimeoutError
    _AuthenticationBase = ConnectionError
    _ResponseBase = RuntimeError


class RedisLimitError(RateLimiterError):
    """Redis, or the way to it, failed: the limiter could not decide.

    ``outcome_unknown`` is True when the request may have reached Redis and
    counted although no answer came back (a timeout, a connection lost in
    flight): it is never retried."""

    def __init__(self, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(message, outcome_unknown)
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        return str(self.args[0])


class RedisConnectionError(RedisLimitError, _ConnectionBase):
    """No connection to Redis (refused, unreachable, pool exhausted, the
    circuit breaker open) or the connection broke during the request. Also a
    ``redis.exceptions.ConnectionError``."""


class RedisAuthenticationError(RedisConnectionError, _AuthenticationBase):
    """Redis refused the credentials. Also a
    ``redis.exceptions.AuthenticationError``."""


class RedisConfigurationError(RedisConnectionError):
    """Redis refuses this configuration in a way that cannot heal by itself
    (an unknown database, a host name that does not resolve, an ACL that
    forbids the scripts, TLS settings this build cannot honour)."""


class RedisTimeoutError(RedisLimitError, _TimeoutBase):
    """Redis did not answer within the response timeout; the request may
    have counted (``outcome_unknown``). Also a ``redis.exceptions.TimeoutError``."""


class RedisResponseError(RedisLimitError, _ResponseBase):
    """Redis answered with an error (out of memory, a script error, a key of
    another type under the prefix) or with a reply the scripts never give.
    Also a ``redis.exceptions.ResponseError``."""
