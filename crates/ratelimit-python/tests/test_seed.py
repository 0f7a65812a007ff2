"""The original README's examples, run as written: the quick start of
TokenBucketMemory verbatim, and the same lines for every other class."""

import contextlib
import io


def run(source: str, **names) -> str:
    """Runs `source` as a module would, returning what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<readme>", "exec"), dict(names))
    return out.getvalue()


QUICK_START = """\
from rate_limiter import TokenBucketMemory
limiter = TokenBucketMemory(capacity=10, refill_rate=2.0)
result = limiter.allow_request("user123")
if result.allowed:
    print(f"Request allowed! {result.tokens_remaining} tokens remaining")
else:
    print(f"Rate limited! Retry after {result.retry_after:.2f} seconds")
"""


def test_quick_start_runs_verbatim():
    assert run(QUICK_START) == "Request allowed! 9 tokens remaining\n"


def test_quick_start_denies_the_eleventh_request_and_says_when_to_retry():
    source = QUICK_START.replace(
        'result = limiter.allow_request("user123")',
        'for _ in range(11):\n    result = limiter.allow_request("user123")',
    )
    printed = run(source)
    assert printed.startswith("Rate limited! Retry after 0.")
    # 2 tokens per second: the next token is at most 0.5 s away.
    assert 0.0 < float(printed.split()[4]) <= 0.5


def test_leaky_bucket_memory_quick_start():
    printed = run(
        """\
from rate_limiter import LeakyBucketMemory
limiter = LeakyBucketMemory(capacity=5, leak_rate=2.0)
for _ in range(6):
    result = limiter.allow_request("user123")
    if result.allowed:
        print(f"Request allowed! {result.tokens_remaining} tokens remaining")
    else:
        print(f"Rate limited! Retry after {result.retry_after:.2f} seconds")
"""
    )
    lines = printed.splitlines()
    assert lines[:5] == [f"Request allowed! {n} tokens remaining" for n in (4, 3, 2, 1, 0)]
    assert lines[5].startswith("Rate limited! Retry after 0.")


def test_positional_constructors_are_the_keyword_ones():
    from rate_limiter import LeakyBucketMemory, TokenBucketMemory

    assert repr(TokenBucketMemory(10, 2.0)) == repr(TokenBucketMemory(capacity=10, refill_rate=2.0))
    assert repr(LeakyBucketMemory(5, 2.0)) == "LeakyBucketMemory(capacity=5, leak_rate=2.0)"


def test_redis_quick_start(redis_url):
    import redis

    printed = run(
        """\
import redis
from rate_limiter import TokenBucketRedis, LeakyBucketRedis
redis_client = redis.Redis(host=HOST, port=PORT, db=0, decode_responses=True)
limiter = TokenBucketRedis(capacity=100, refill_rate=10.0, redis_client=redis_client)
result = limiter.allow_request("user456")
if result.allowed:
    print(f"Request allowed! {result.tokens_remaining} tokens remaining")
else:
    print(f"Rate limited! Retry after {result.retry_after:.2f} seconds")
leaky = LeakyBucketRedis(capacity=5, leak_rate=2.0, redis_client=redis_client)
result = leaky.allow_request("user789")
print(result.allowed, result.tokens_remaining)
""",
        HOST=redis_url.host,
        PORT=redis_url.port,
    )
    assert printed == "Request allowed! 99 tokens remaining\nTrue 4\n"
    assert redis  # the example's import is the caller's redis-py


def test_the_installed_package_names_its_version_and_exports():
    import importlib.metadata

    import rate_limiter

    assert rate_limiter.__version__ == importlib.metadata.version("rate-limiter")
    for name in rate_limiter.__all__:
        assert hasattr(rate_limiter, name), name
    # One wheel for every CPython from 3.9: the stable ABI's file name.
    assert rate_limiter._native.__file__.endswith(".abi3.so")
