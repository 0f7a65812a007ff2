"""Many Python threads on one limiter stay exact: with a refill so slow that
nothing refills during the test, exactly `capacity` requests are admitted,
however the threads interleave. The Redis limiters release the GIL during
the round trip, so their threads really do run at once."""

import sys
import threading

import pytest

from rate_limiter import LeakyBucketMemory, SlidingWindowMemory, TokenBucketMemory

THREADS = 8
CAPACITY = 1_000
SLOW = 1e-6  # one unit per 11.6 days


def hammer(call, per_thread):
    """Runs `call()` per_thread times on THREADS threads started together;
    returns the number of truthy answers."""
    barrier = threading.Barrier(THREADS)
    counts = [0] * THREADS
    errors = []

    def worker(i):
        try:
            barrier.wait()
            n = 0
            for _ in range(per_thread):
                if call():
                    n += 1
            counts[i] = n
        except BaseException as e:  # surfaced below, never lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    # Switch threads as often as the interpreter can: the interleavings of
    # calls, not of whole time slices.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    return sum(counts)


@pytest.mark.parametrize("cls", [TokenBucketMemory, LeakyBucketMemory])
def test_memory_bucket_admits_exactly_its_capacity(cls):
    limiter = cls(CAPACITY, SLOW)
    admitted = hammer(lambda: limiter.allow_request("hot").allowed, per_thread=CAPACITY // 2)
    assert admitted == CAPACITY
    assert limiter.remaining("hot") == 0


def test_memory_window_admits_exactly_its_limit():
    limiter = SlidingWindowMemory(CAPACITY, 10**6)
    admitted = hammer(lambda: limiter.check("hot", 2).allowed, per_thread=CAPACITY // 4)
    assert admitted == CAPACITY // 2


def test_memory_many_keys_each_exact():
    limiter = TokenBucketMemory(10, SLOW)
    keys = [f"user{i}" for i in range(50)]
    lock = threading.Lock()
    admitted = {k: 0 for k in keys}

    def call():
        n = 0
        for k in keys:
            if limiter.allow_request(k).allowed:
                n += 1
                with lock:
                    admitted[k] += 1
        return n

    hammer(call, per_thread=5)
    assert all(n == 10 for n in admitted.values()), admitted


@pytest.mark.parametrize("cls_name", ["TokenBucketRedis", "LeakyBucketRedis"])
def test_redis_bucket_admits_exactly_its_capacity(redis_client, cls_name):
    import rate_limiter

    cls = getattr(rate_limiter, cls_name)
    # Redis needs capacity / rate below 2**53 ns (104 days): one unit an
    # hour, so nothing refills during the test either.
    limiter = cls(200, 1 / 3600, redis_client)
    admitted = hammer(lambda: limiter.allow_request("hot").allowed, per_thread=50)
    assert admitted == 200
    assert limiter.remaining("hot") == 0


def test_the_gil_is_released_while_a_call_waits_on_redis():
    """A server written in Python, in a thread of this process, can only
    see the request and hang up if the calling thread let go of the GIL
    while it waits for the answer: if it held it, the server thread could
    not run, and the call would end in a timeout instead of a lost
    connection."""
    import socket

    from rate_limiter import RedisConnectionError, TokenBucketRedis

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    seen = threading.Event()
    call_returned = threading.Event()
    order = []

    def server():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    # EVALSHA, or FCALL where the functions path is taken.
                    if b"EVAL" in data.upper() or b"FCALL" in data.upper():
                        order.append("server saw the script call")
                        seen.set()
                        break  # and hang up: the waiting call fails at once
                    commands = data.count(b"\r\n*") + data.startswith(b"*")
                    conn.sendall(b"+OK\r\n" * max(commands, 1))

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    try:
        limiter = TokenBucketRedis(
            5, 1.0, url=f"redis://127.0.0.1:{port}/", response_timeout=5, circuit_breaker=None
        )
        with pytest.raises(RedisConnectionError) as e:
            limiter.allow_request("k")
        order.append("call returned")
        assert e.value.outcome_unknown  # sent, then the connection was lost
        call_returned.set()
    finally:
        call_returned.set()
        listener.close()
    assert order == ["server saw the script call", "call returned"]


@pytest.mark.parametrize("cls_name", ["FixedWindowRedis", "SlidingWindowRedis"])
def test_redis_window_admits_exactly_its_limit(redis_client, cls_name):
    import rate_limiter

    cls = getattr(rate_limiter, cls_name)
    # Client time held still, inside one window: no boundary can pass.
    clock = rate_limiter.ManualClock(1000 * 60 * 10**9 + 10**9)
    limiter = cls(200, 60, redis_client, clock=clock)
    admitted = hammer(lambda: limiter.check("hot", 2).allowed, per_thread=25)
    assert admitted == 100
    assert limiter.remaining("hot") == 0
