"""Type stubs of the native module (the classes are re-exported by
rate_limiter; import them from there)."""

import datetime
from typing import Any, ClassVar, Literal, Optional, Tuple, Union

Seconds = Union[int, float, datetime.timedelta]
Key = Union[str, bytes]
Strategy = Literal["keep-consumed", "keep-available", "proportional", "reset"]

DEFAULT_MAX_KEYS: int
HAS_TLS: bool

def _after_fork_in_child() -> None: ...

class RateLimitResult:
    """The original dataclass: allowed, tokens_remaining, retry_after (s)."""

    allowed: bool
    tokens_remaining: int
    retry_after: Optional[float]
    __match_args__: ClassVar[Tuple[str, str, str]]
    __dataclass_fields__: ClassVar[dict]
    def __init__(
        self, allowed: bool, tokens_remaining: int, retry_after: Optional[float] = None
    ) -> None: ...
    def __eq__(self, other: object) -> bool: ...

class Decision:
    @property
    def allowed(self) -> bool: ...
    @property
    def remaining(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def retry_after(self) -> Optional[float]: ...
    @property
    def retry_after_ns(self) -> Optional[int]: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def reset_after_ns(self) -> int: ...
    @property
    def reason(self) -> str: ...
    def __bool__(self) -> bool: ...

class Reservation:
    @property
    def admitted(self) -> bool: ...
    @property
    def wait(self) -> Optional[float]: ...
    @property
    def wait_ns(self) -> Optional[int]: ...
    @property
    def retry_after(self) -> Optional[float]: ...
    @property
    def retry_after_ns(self) -> Optional[int]: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def reset_after_ns(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def reason(self) -> str: ...
    def __bool__(self) -> bool: ...

class ManualClock:
    def __init__(self, now_ns: int = 0) -> None: ...
    @property
    def now_ns(self) -> int: ...
    @property
    def now(self) -> float: ...
    def set_ns(self, now_ns: int) -> None: ...
    def advance(self, seconds: Seconds) -> None: ...
    def advance_ns(self, ns: int) -> None: ...

class _Memory:
    def allow_request(self, key: Key) -> RateLimitResult: ...
    def check(self, key: Key, cost: int = 1) -> Decision: ...
    def remaining(self, key: Key) -> int: ...
    def reset_after(self, key: Key) -> float: ...
    @property
    def keys_held(self) -> int: ...

class TokenBucketMemory(_Memory):
    def __init__(
        self,
        capacity: int,
        refill_rate: float,
        *,
        clock: Optional[ManualClock] = None,
        max_keys: Optional[int] = None,
    ) -> None: ...
    def reserve(self, key: Key, cost: int = 1, max_wait: Optional[Seconds] = None) -> Reservation: ...
    def reconfigure(
        self, capacity: int, refill_rate: float, *, strategy: Optional[Strategy] = None
    ) -> None: ...
    def check_with_quota(
        self, key: Key, capacity: int, refill_rate: float, cost: int = 1
    ) -> Decision: ...
    def reserve_with_quota(
        self,
        key: Key,
        capacity: int,
        refill_rate: float,
        cost: int = 1,
        max_wait: Optional[Seconds] = None,
    ) -> Reservation: ...
    @property
    def capacity(self) -> int: ...
    @property
    def refill_rate(self) -> float: ...

class LeakyBucketMemory(_Memory):
    def __init__(
        self,
        capacity: int,
        leak_rate: float,
        *,
        clock: Optional[ManualClock] = None,
        max_keys: Optional[int] = None,
    ) -> None: ...
    def reserve(self, key: Key, cost: int = 1, max_wait: Optional[Seconds] = None) -> Reservation: ...
    def reconfigure(
        self, capacity: int, leak_rate: float, *, strategy: Optional[Strategy] = None
    ) -> None: ...
    def check_with_quota(
        self, key: Key, capacity: int, leak_rate: float, cost: int = 1
    ) -> Decision: ...
    def reserve_with_quota(
        self,
        key: Key,
        capacity: int,
        leak_rate: float,
        cost: int = 1,
        max_wait: Optional[Seconds] = None,
    ) -> Reservation: ...
    @property
    def capacity(self) -> int: ...
    @property
    def leak_rate(self) -> float: ...

class FixedWindowMemory(_Memory):
    def __init__(
        self,
        limit: int,
        window: Seconds,
        *,
        clock: Optional[ManualClock] = None,
        max_keys: Optional[int] = None,
    ) -> None: ...
    def reconfigure(self, limit: int, window: Seconds) -> None: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...

class SlidingWindowMemory(_Memory):
    def __init__(
        self,
        limit: int,
        window: Seconds,
        *,
        clock: Optional[ManualClock] = None,
        max_keys: Optional[int] = None,
    ) -> None: ...
    def reconfigure(self, limit: int, window: Seconds) -> None: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...

class _Redis:
    def allow_request(self, key: Key) -> RateLimitResult: ...
    def check(self, key: Key, cost: int = 1) -> Decision: ...
    def remaining(self, key: Key) -> int: ...
    def reset_after(self, key: Key) -> float: ...
    def redis_key(self, key: Key) -> bytes: ...
    @property
    def prefix(self) -> str: ...

class _BucketRedis(_Redis):
    def reserve(self, key: Key, cost: int = 1, max_wait: Optional[Seconds] = None) -> Reservation: ...
    def reconfigure(
        self, capacity: int, rate: float, *, strategy: Optional[Strategy] = None
    ) -> None: ...
    def check_with_quota(self, key: Key, capacity: int, rate: float, cost: int = 1) -> Decision: ...
    def reserve_with_quota(
        self,
        key: Key,
        capacity: int,
        rate: float,
        cost: int = 1,
        max_wait: Optional[Seconds] = None,
    ) -> Reservation: ...
    @property
    def capacity(self) -> int: ...

class TokenBucketRedis(_BucketRedis):
    def __init__(
        self,
        capacity: int,
        refill_rate: float,
        redis_client: Any = None,
        *,
        url: Optional[str] = None,
        prefix: str = "ratelimit",
        clock: Optional[ManualClock] = None,
        failure_policy: str = "raise",
        circuit_breaker: Optional[Tuple[int, float]] = (5, 1.0),
        hash_keys: Optional[Union[str, bytes]] = None,
        max_key_len: Optional[int] = None,
        connect_timeout: Optional[Seconds] = None,
        response_timeout: Optional[Seconds] = None,
        max_connections: Optional[int] = None,
    ) -> None: ...
    @property
    def refill_rate(self) -> float: ...

class LeakyBucketRedis(_BucketRedis):
    def __init__(
        self,
        capacity: int,
        leak_rate: float,
        redis_client: Any = None,
        *,
        url: Optional[str] = None,
        prefix: str = "ratelimit",
        clock: Optional[ManualClock] = None,
        failure_policy: str = "raise",
        circuit_breaker: Optional[Tuple[int, float]] = (5, 1.0),
        hash_keys: Optional[Union[str, bytes]] = None,
        max_key_len: Optional[int] = None,
        connect_timeout: Optional[Seconds] = None,
        response_timeout: Optional[Seconds] = None,
        max_connections: Optional[int] = None,
    ) -> None: ...
    @property
    def leak_rate(self) -> float: ...

class FixedWindowRedis(_Redis):
    def __init__(
        self,
        limit: int,
        window: Seconds,
        redis_client: Any = None,
        *,
        url: Optional[str] = None,
        prefix: str = "ratelimit",
        clock: Optional[ManualClock] = None,
        failure_policy: str = "raise",
        circuit_breaker: Optional[Tuple[int, float]] = (5, 1.0),
        hash_keys: Optional[Union[str, bytes]] = None,
        max_key_len: Optional[int] = None,
        connect_timeout: Optional[Seconds] = None,
        response_timeout: Optional[Seconds] = None,
        max_connections: Optional[int] = None,
    ) -> None: ...
    def reconfigure(self, limit: int, window: Seconds) -> None: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...

class SlidingWindowRedis(_Redis):
    def __init__(
        self,
        limit: int,
        window: Seconds,
        redis_client: Any = None,
        *,
        url: Optional[str] = None,
        prefix: str = "ratelimit",
        clock: Optional[ManualClock] = None,
        failure_policy: str = "raise",
        circuit_breaker: Optional[Tuple[int, float]] = (5, 1.0),
        hash_keys: Optional[Union[str, bytes]] = None,
        max_key_len: Optional[int] = None,
        connect_timeout: Optional[Seconds] = None,
        response_timeout: Optional[Seconds] = None,
        max_connections: Optional[int] = None,
    ) -> None: ...
    def reconfigure(self, limit: int, window: Seconds) -> None: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...

__version__: str
