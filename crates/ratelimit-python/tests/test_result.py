"""RateLimitResult behaves as the original @dataclass did; Decision and
Reservation are frozen values with exact nanoseconds beside the seconds."""

import copy
import dataclasses
import pickle
import sys

import pytest

from rate_limiter import (
    Decision,
    ManualClock,
    RateLimitResult,
    Reservation,
    TokenBucketMemory,
)


@dataclasses.dataclass
class Original:
    """The seed's dataclass, as its README describes it."""

    allowed: bool
    tokens_remaining: int
    retry_after: "float | None" = None


def test_constructor_positional_keyword_and_default():
    assert RateLimitResult(True, 9) == RateLimitResult(allowed=True, tokens_remaining=9, retry_after=None)
    assert RateLimitResult(False, 0, 0.5).retry_after == 0.5
    with pytest.raises(TypeError):
        RateLimitResult(True)


def test_repr_is_the_dataclass_repr():
    for args in [(True, 9, None), (False, 0, 0.5), (False, 0, 1e-05), (False, 3, 2.0)]:
        ours = repr(RateLimitResult(*args))
        theirs = repr(Original(*args)).replace("Original(", "RateLimitResult(")
        assert ours == theirs


def test_equality_is_field_wise_and_not_with_other_types():
    a = RateLimitResult(False, 0, 0.25)
    assert a == RateLimitResult(False, 0, 0.25)
    assert a != RateLimitResult(False, 0, 0.5)
    assert a != RateLimitResult(True, 0, 0.25)
    assert a != Original(False, 0, 0.25)  # another class: NotImplemented both ways
    assert a != (False, 0, 0.25)
    with pytest.raises(TypeError):
        _ = a < a  # a dataclass without order=True has no ordering


def test_not_hashable_and_mutable_like_a_plain_dataclass():
    with pytest.raises(TypeError):
        hash(Original(True, 1))
    r = RateLimitResult(True, 1)
    with pytest.raises(TypeError, match="unhashable"):
        hash(r)
    r.allowed = False
    r.tokens_remaining = 0
    r.retry_after = 1.5
    assert r == RateLimitResult(False, 0, 1.5)


def test_dataclasses_module_works_on_it():
    r = RateLimitResult(False, 0, 0.5)
    assert dataclasses.is_dataclass(r)
    assert [f.name for f in dataclasses.fields(r)] == ["allowed", "tokens_remaining", "retry_after"]
    assert dataclasses.asdict(r) == {"allowed": False, "tokens_remaining": 0, "retry_after": 0.5}
    assert dataclasses.astuple(r) == (False, 0, 0.5)
    assert dataclasses.replace(r, allowed=True, retry_after=None) == RateLimitResult(True, 0)


def test_copy_pickle_and_match():
    r = RateLimitResult(False, 2, 0.125)
    assert copy.copy(r) == r and copy.copy(r) is not r
    assert pickle.loads(pickle.dumps(r)) == r
    assert RateLimitResult.__match_args__ == ("allowed", "tokens_remaining", "retry_after")
    if sys.version_info >= (3, 10):  # `match` is a syntax error before 3.10
        scope = {"r": r, "RateLimitResult": RateLimitResult}
        exec(
            "match r:\n"
            "    case RateLimitResult(allowed, remaining, wait):\n"
            "        found = (allowed, remaining, wait)\n",
            scope,
        )
        assert scope["found"] == (False, 2, 0.125)


def test_allow_request_fills_the_three_fields():
    clock = ManualClock()
    limiter = TokenBucketMemory(2, 4.0, clock=clock)
    assert limiter.allow_request("k") == RateLimitResult(True, 1, None)
    assert limiter.allow_request("k") == RateLimitResult(True, 0, None)
    assert limiter.allow_request("k") == RateLimitResult(False, 0, 0.25)
    clock.advance(0.25)
    assert limiter.allow_request("k") == RateLimitResult(True, 0, None)


def test_decision_carries_seconds_and_exact_nanoseconds():
    clock = ManualClock(1_000_000_000)
    limiter = TokenBucketMemory(3, 3.0, clock=clock)
    d = limiter.check("k", cost=3)
    assert isinstance(d, Decision) and d and d.allowed
    assert (d.remaining, d.limit, d.reason) == (0, 3, "quota")
    assert d.retry_after is None and d.retry_after_ns is None
    assert d.reset_after_ns == 3 * 333_333_334  # T = 1e9 / 3, rounded up
    assert d.reset_after == d.reset_after_ns / 1e9
    denied = limiter.check("k")
    assert not denied
    assert denied.retry_after_ns == 333_333_334
    assert repr(denied) == (
        "Decision(allowed=False, remaining=0, retry_after=0.333333334, "
        "reset_after=1.000000002, limit=3, reason='quota')"
    )
    # Frozen values: hashable, equal when every field is.
    assert hash(denied) == hash(limiter.check("k")) and denied == limiter.check("k")
    with pytest.raises(AttributeError):
        denied.allowed = True


def test_reservation_is_admitted_with_a_wait_or_rejected_with_a_retry():
    clock = ManualClock()
    limiter = TokenBucketMemory(1, 1.0, clock=clock)
    first = limiter.reserve("k")
    assert isinstance(first, Reservation) and first.admitted and first
    assert (first.wait, first.wait_ns, first.retry_after) == (0.0, 0, None)
    second = limiter.reserve("k", max_wait=2)
    assert second.admitted and second.wait_ns == 1_000_000_000
    third = limiter.reserve("k", cost=1, max_wait=0.5)
    assert not third and third.wait is None
    assert third.retry_after_ns == 2_000_000_000 - 500_000_000
    assert repr(third).startswith("Reservation(admitted=False, wait=None, retry_after=1.5,")
