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
