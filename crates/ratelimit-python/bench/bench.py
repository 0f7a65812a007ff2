"""allow_request per second from Python: rate_limiter against what a Python
service would otherwise run, in one process and one run.

Memory: TokenBucketMemory against a pure-Python token bucket written the way
the original library describes it (a dict of float tokens and timestamps,
one threading.Lock, a dataclass result). Goal: at least 3x.

Redis: TokenBucketRedis against redis-py running an equivalent token-bucket
Lua script with EVALSHA (one round trip each, server time, a dataclass
result), on a private redis-server (a free port, killed at the end), one
thread each. Goal: at least 1.5x. A row with 4 threads shows what releasing
the GIL during the round trip buys.

Usage: python bench.py [--quick]     (cargo xtask python-bench [--quick])
Timings are printed, never asserted: --quick only proves the script runs.
"""

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Optional

import redis

import rate_limiter
from rate_limiter import TokenBucketMemory, TokenBucketRedis


@dataclass
class RateLimitResult:
    allowed: bool
    tokens_remaining: int
    retry_after: Optional[float] = None


class PureTokenBucket:
    """The original's in-memory token bucket: float tokens per key in a dict,
    refilled from the elapsed time, under one lock."""

    def __init__(self, capacity: int, refill_rate: float) -> None:
        self.capacity = capacity
        self.refill_rate = refill_rate
        self.buckets = {}
        self.lock = threading.Lock()

    def allow_request(self, key: str) -> RateLimitResult:
        with self.lock:
            now = time.monotonic()
            tokens, last = self.buckets.get(key, (float(self.capacity), now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill_rate)
            if tokens >= 1:
                tokens -= 1
                self.buckets[key] = (tokens, now)
                return RateLimitResult(True, int(tokens))
            self.buckets[key] = (tokens, now)
            return RateLimitResult(False, 0, (1 - tokens) / self.refill_rate)


LUA_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = ''
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = tostring((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, math.floor(tokens), retry}
"""


class RedisPyTokenBucket:
    """The same token bucket through redis-py: one EVALSHA per request."""

    def __init__(self, capacity, refill_rate, client):
        self.capacity, self.refill_rate, self.client = capacity, refill_rate, client
        self.sha = client.script_load(LUA_TOKEN_BUCKET)

    def allow_request(self, key):
        allowed, tokens, retry = self.client.evalsha(
            self.sha, 1, "py:" + key, self.capacity, self.refill_rate
        )
        return RateLimitResult(allowed == 1, int(tokens), float(retry) if retry else None)


def rate(call, keys, seconds):
    """Calls per second of call(key) over the keys, repeated for `seconds`
    (the best of three rounds)."""
    best = 0.0
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for key in keys:
                call(key)
            n += len(keys)
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def threaded_rate(call, keys, seconds, threads):
    """Calls per second of `threads` threads calling call(key) together."""
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(i):
        barrier.wait()
        n = 0
        while not stop.is_set():
            for key in keys:
                call(key)
            n += len(keys)
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def start_redis():
    binary = shutil.which("redis-server")
    if not binary:
        sys.exit("redis-server is required (apt-get install -y redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="rate-limiter-bench-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, port, workdir
        except OSError:
            time.sleep(0.01)
    process.kill()
    sys.exit("redis-server did not start")


def row(name, value, base=None):
    ratio = f"{value / base:6.2f}x" if base else "       "
    print(f"  {name:<46} {value:>12,.0f}/s  {ratio}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 3.0
    keys = [f"user{i}" for i in range(1000)]
    capacity, refill = 1_000_000, 1_000.0  # allowed throughout: the common path

    print(f"rate_limiter benchmark ({'quick' if args.quick else 'full'}): "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("memory, allow_request, one thread, 1000 keys:")
    pure = rate(PureTokenBucket(capacity, refill).allow_request, keys, seconds)
    ours = rate(TokenBucketMemory(capacity, refill).allow_request, keys, seconds)
    row("pure Python (dict + threading.Lock + floats)", pure)
    row("rate_limiter.TokenBucketMemory", ours, pure)
    memory_ratio = ours / pure

    process, port, workdir = start_redis()
    try:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        theirs = RedisPyTokenBucket(capacity, refill, client)
        limiter = TokenBucketRedis(capacity, refill, client, prefix="bench")
        print("redis, allow_request, one round trip each, 1000 keys:")
        redis_py = rate(theirs.allow_request, keys, seconds)
        row("redis-py EVALSHA (token-bucket Lua), 1 thread", redis_py)
        ours_redis = rate(limiter.allow_request, keys, seconds)
        row("rate_limiter.TokenBucketRedis, 1 thread", ours_redis, redis_py)
        redis_ratio = ours_redis / redis_py
        redis_py_4 = threaded_rate(theirs.allow_request, keys, seconds, 4)
        row("redis-py EVALSHA, 4 threads", redis_py_4)
        ours_4 = threaded_rate(limiter.allow_request, keys, seconds, 4)
        row("rate_limiter.TokenBucketRedis, 4 threads", ours_4, redis_py_4)
        client.close()
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print("goals:")
    print(f"  memory >= 3x pure Python:        {memory_ratio:5.2f}x  "
          f"{'met' if memory_ratio >= 3 else 'MISSED'}")
    print(f"  redis >= 1.5x redis-py/thread:   {redis_ratio:5.2f}x  "
          f"{'met' if redis_ratio >= 1.5 else 'MISSED'}")
    print(f"rate_limiter from {os.path.dirname(rate_limiter.__file__)}")


if __name__ == "__main__":
    main()
