"""The Redis limiters: the caller's redis-py client decides where and how
to connect (host, port, db, user and password, Unix socket, TLS), a Rust
service on the same prefix shares the limit, and failures are typed
exceptions that redis-py handlers already catch."""

import asyncio
import hmac
import os
import subprocess

import pytest
import redis

from conftest import REPO
from rate_limiter import (
    AsyncTokenBucketRedis,
    HAS_TLS,
    InsufficientCapacity,
    KeyTooLong,
    LeakyBucketRedis,
    ManualClock,
    RateLimiterError,
    RedisAuthenticationError,
    RedisConfigurationError,
    RedisConnectionError,
    RedisLimitError,
    TokenBucketRedis,
)
from conftest import free_port

HOURLY = 1 / 3600  # nothing refills during a test


def test_state_is_the_rust_crates_key_and_value(redis_client):
    limiter = TokenBucketRedis(10, 2.0, redis_client)
    assert limiter.allow_request("user456").tokens_remaining == 9
    assert limiter.redis_key("user456") == b"ratelimit|user456"
    assert limiter.redis_key(b"user456") == b"ratelimit|user456"
    stored = redis_client.get("ratelimit|user456")
    assert stored is not None and int(stored) > 0  # tat, in nanoseconds
    # Expires when full again: at the first millisecond at or after its tat,
    # 500 ms after a `now` that may lie inside the millisecond PTTL is read
    # in, so up to 501 ms ahead.
    assert 0 < redis_client.pttl("ratelimit|user456") <= 501
    assert repr(limiter) == (
        f"TokenBucketRedis(capacity=10, refill_rate=2.0, prefix='ratelimit', "
        f"server='redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0')"
    )


def test_a_rust_process_and_python_share_one_limit(redis_url):
    client = redis.Redis(host=redis_url.host, port=redis_url.port, decode_responses=True)
    python = TokenBucketRedis(5, HOURLY, client, prefix="shared")
    assert [python.allow_request("tenant").allowed for _ in range(3)] == [True] * 3

    # `cargo xtask python` builds the peer first and names it here.
    peer_args = [redis_url.url, "shared", "5", repr(HOURLY), "tenant", "4"]
    built = os.environ.get("RATE_LIMITER_RUST_PEER")
    command = [built] if built else [
        "cargo", "run", "--quiet", "-p", "ratelimit-python", "--example", "rust_peer", "--"]
    peer = subprocess.run(command + peer_args, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert peer.returncode == 0, peer.stderr
    # The Rust process finds 2 tokens left by Python, takes them, is denied.
    assert peer.stdout.splitlines() == ["allowed 1", "allowed 0", "denied", "denied"]
    # And Python sees what Rust took.
    assert not python.allow_request("tenant").allowed
    assert python.remaining("tenant") == 0


def test_db_password_and_username_come_from_the_client(private_redis):
    server = private_redis("--requirepass", "s3cret:/@?", "--user", "alice", "on", ">alice:pw",
                           "~*", "&*", "+@all")
    for kwargs in [dict(password="s3cret:/@?", db=3), dict(username="alice", password="alice:pw", db=5)]:
        client = redis.Redis(host=server.host, port=server.port, decode_responses=True, **kwargs)
        limiter = TokenBucketRedis(2, HOURLY, client, prefix="p")
        assert limiter.check("k", 2).allowed
        assert not limiter.check("k").allowed
        # The state is in the client's database, and only there.
        assert client.exists("p|k") == 1
        other = redis.Redis(host=server.host, port=server.port, **{**kwargs, "db": 0})
        assert other.exists("p|k") == 0


def test_credential_provider_is_asked(private_redis):
    server = private_redis("--requirepass", "from-provider")

    class Provider(redis.CredentialProvider):
        def get_credentials(self):
            return ("from-provider",)

    client = redis.Redis(host=server.host, port=server.port, credential_provider=Provider())
    assert TokenBucketRedis(1, HOURLY, client).allow_request("k").allowed


def test_unix_socket_client(private_redis, tmp_path):
    socket_path = tmp_path / "redis.sock"
    server = private_redis("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    client = redis.Redis(unix_socket_path=str(socket_path), db=2)
    limiter = LeakyBucketRedis(1, HOURLY, client)
    assert limiter.allow_request("k").allowed
    assert not limiter.allow_request("k").allowed
    assert redis.Redis(host=server.host, port=server.port, db=2).exists("ratelimit|k")


def test_wrong_credentials_fail_at_construction_as_redis_py_would(private_redis):
    server = private_redis("--requirepass", "right")
    client = redis.Redis(host=server.host, port=server.port, password="wrong")
    with pytest.raises(RedisAuthenticationError) as e:
        TokenBucketRedis(1, 1.0, client)
    assert isinstance(e.value, redis.exceptions.AuthenticationError)
    assert isinstance(e.value, RedisLimitError) and isinstance(e.value, RateLimiterError)
    assert "right" not in str(e.value) and "wrong" not in str(e.value)


def test_a_server_that_is_down_raises_connection_errors_or_follows_the_policy():
    client = redis.Redis(host="127.0.0.1", port=free_port())
    limiter = TokenBucketRedis(5, 1.0, client, connect_timeout=0.2)  # down at start-up is no error
    with pytest.raises(RedisConnectionError) as e:
        limiter.allow_request("k")
    assert isinstance(e.value, redis.exceptions.ConnectionError)
    assert e.value.outcome_unknown is False  # nothing was sent
    allow = TokenBucketRedis(5, 1.0, client, failure_policy="allow", connect_timeout=0.2)
    d = allow.check("k")
    assert d.allowed and d.reason == "fail_open"
    deny = TokenBucketRedis(5, 1.0, client, failure_policy="deny", connect_timeout=0.2)
    d = deny.check("k")
    assert not d.allowed and d.reason == "fail_closed" and d.retry_after_ns == 1_000_000_000  # one interval
    local = TokenBucketRedis(2, HOURLY, client, failure_policy="local", connect_timeout=0.2)
    assert [local.check("k").reason for _ in range(3)] == ["fallback"] * 3
    assert [local.check("j").allowed for _ in range(3)] == [True, True, False]


def test_an_unknown_database_is_a_configuration_error(redis_url):
    client = redis.Redis(host=redis_url.host, port=redis_url.port, db=99)
    with pytest.raises(RedisConfigurationError):
        TokenBucketRedis(1, 1.0, client)


def test_keys_options_and_argument_errors(redis_client):
    limiter = TokenBucketRedis(3, 1.0, redis_client, prefix="api")
    with pytest.raises(KeyTooLong) as e:
        limiter.check("x" * 257)
    assert isinstance(e.value, ValueError)
    with pytest.raises(InsufficientCapacity):
        limiter.check("k", 4)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        limiter.check(42)
    secret = b"0123456789abcdef0123456789abcdef"
    hashed = TokenBucketRedis(3, 1.0, redis_client, prefix="h", hash_keys=secret)
    assert hashed.allow_request("x" * 10_000).allowed  # any length, hashed
    digest = hmac.new(secret, b"user1", "sha256").hexdigest()[:32]
    assert hashed.redis_key("user1") == b"h|" + digest.encode()
    with pytest.raises(ValueError, match="prefix"):
        TokenBucketRedis(3, 1.0, redis_client, prefix="a|b")
    with pytest.raises(ValueError, match="failure_policy must be"):
        TokenBucketRedis(3, 1.0, redis_client, failure_policy="open")
    with pytest.raises(TypeError, match="redis_client .* or url"):
        TokenBucketRedis(3, 1.0)
    with pytest.raises(TypeError, match="redis_client must be a redis.Redis"):
        TokenBucketRedis(3, 1.0, redis_client=object())
    with pytest.raises(ValueError, match="below 2\\^53 ns"):
        TokenBucketRedis(10**6, 1e-3, redis_client)
    with pytest.raises(ValueError, match="invalid refill_rate=0.0"):
        TokenBucketRedis(3, 0.0, redis_client)

    class NotAClient:
        pass

    with pytest.raises(TypeError, match="redis_client must be a redis.Redis"):
        TokenBucketRedis(3, 1.0, NotAClient())


def test_url_instead_of_a_client(redis_url):
    limiter = TokenBucketRedis(2, HOURLY, url=redis_url.url + "4", prefix="u")
    assert limiter.check("k", 2).allowed
    assert redis.Redis(host=redis_url.host, port=redis_url.port, db=4).exists("u|k")


def test_reserve_and_client_time(redis_client):
    clock = ManualClock(10**18)
    limiter = LeakyBucketRedis(2, 4.0, redis_client, clock=clock, prefix="t")
    assert [limiter.reserve("k").wait_ns for _ in range(2)] == [0, 250_000_000]
    assert not limiter.reserve("k", max_wait=1)
    clock.advance(0.5)
    assert limiter.reserve("k").wait_ns == 0


def test_asyncio_front_end(redis_url):
    async def main():
        client = redis.asyncio.Redis(host=redis_url.host, port=redis_url.port)
        limiter = AsyncTokenBucketRedis(3, HOURLY, client, prefix="aio")
        results = await asyncio.gather(*(limiter.allow_request("k") for _ in range(5)))
        await client.aclose()
        return results, await limiter.remaining("k"), await limiter.check("j", 2)

    results, remaining, decision = asyncio.run(main())
    assert sum(r.allowed for r in results) == 3 and remaining == 0
    assert decision.allowed and decision.remaining == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# Python 3.12+ warns about forking a process with threads (the pool's);
# the child never touches what they might hold, which is the point here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_uses_connections_of_its_own(redis_client):
    limiter = TokenBucketRedis(4, HOURLY, redis_client, prefix="fork")
    assert limiter.allow_request("k").allowed  # the parent's pool has a connection now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: two checks on its own connection
        try:
            n = sum(limiter.allow_request("k").allowed for _ in range(2))
            os.write(write, str(n).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.waitpid(pid, 0)
    assert child == b"2"
    # The parent's connection is intact and the count is shared.
    assert limiter.allow_request("k").allowed
    assert not limiter.allow_request("k").allowed


@pytest.mark.skipif(not HAS_TLS, reason="built without the tls feature")
def test_tls_with_a_private_ca(tls_server, tls_dir):
    client = redis.Redis(host="localhost", port=tls_server.port, ssl=True,
                         ssl_ca_certs=str(tls_dir / "ca.crt"), decode_responses=True)
    assert client.ping()  # redis-py itself talks to it
    limiter = TokenBucketRedis(2, HOURLY, client, prefix="tls")
    assert repr(limiter).endswith(f"server='rediss://localhost:{tls_server.port}/0')")
    assert [limiter.allow_request("k").allowed for _ in range(3)] == [True, True, False]
    assert client.exists("tls|k") == 1
    # Without the CA the server's certificate is refused.
    untrusted = redis.Redis(host="localhost", port=tls_server.port, ssl=True,
                            socket_connect_timeout=0.3)
    with pytest.raises(RedisLimitError):
        TokenBucketRedis(2, HOURLY, untrusted, prefix="tls").allow_request("k")
    # ssl_cert_reqs="none" checks nothing, as in redis-py.
    insecure = redis.Redis(host="127.0.0.1", port=tls_server.port, ssl=True, ssl_cert_reqs="none")
    assert TokenBucketRedis(2, HOURLY, insecure, prefix="tls2").allow_request("k").allowed


@pytest.mark.skipif(not HAS_TLS, reason="built without the tls feature")
def test_tls_with_a_client_certificate(tls_dir):
    from conftest import start_redis

    server = start_redis("--tls-auth-clients", "yes", tls_dir=tls_dir)
    try:
        client = redis.Redis(host="localhost", port=server.port, ssl=True,
                             ssl_ca_certs=str(tls_dir / "ca.crt"),
                             ssl_certfile=str(tls_dir / "client.crt"),
                             ssl_keyfile=str(tls_dir / "client.key"))
        assert TokenBucketRedis(1, HOURLY, client).allow_request("k").allowed
        anonymous = redis.Redis(host="localhost", port=server.port, ssl=True,
                                ssl_ca_certs=str(tls_dir / "ca.crt"), socket_connect_timeout=0.3)
        with pytest.raises(RedisLimitError):
            TokenBucketRedis(1, HOURLY, anonymous).allow_request("k")
    finally:
        server.stop()


def test_a_redis_cluster_client(redis_cluster):
    from redis.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=redis_cluster[0].port, decode_responses=True)
    limiter = TokenBucketRedis(2, HOURLY, client, prefix="c")
    assert "and 2 more cluster nodes" in repr(limiter)
    keys = [f"user{i}" for i in range(30)]
    for key in keys:
        assert [limiter.allow_request(key).allowed for _ in range(3)] == [True, True, False]
    # Spread over the nodes, each key on the node of its slot.
    nodes = {client.get_node_from_key(f"c|{k}").port for k in keys}
    assert len(nodes) == 3
    assert all(client.exists(f"c|{k}") == 1 for k in keys)
    # Hash tags keep related keys on one node, as in Rust.
    assert limiter.redis_key("{tenant9}:login") == b"c|{tenant9}:login"
    client.close()


def test_a_quota_change_reaches_every_limiter_on_the_prefix(redis_client, redis_url):
    clock = ManualClock(10**18)
    one = TokenBucketRedis(10, HOURLY, redis_client, prefix="plan", clock=clock)
    # Another limiter on the prefix, on its own connections (another process).
    other = TokenBucketRedis(10, HOURLY, url=f"redis://{redis_url.host}:{redis_url.port}/0",
                             prefix="plan", clock=clock)
    assert one.check("u", 4).remaining == 6
    one.reconfigure(20, 2 * HOURLY)  # keep-consumed: 4 used of 20
    assert (one.capacity, one.refill_rate) == (20, 2 * HOURLY)
    assert one.remaining("u") == 16
    # The other meets the converted key: adopts the change, never decides
    # it with its older quota.
    d = other.check("u")
    assert d.allowed and d.remaining == 15 and d.limit == 20
    assert other.remaining("fresh") == 20
    with pytest.raises(ValueError, match="strategy"):
        one.reconfigure(5, HOURLY, strategy="generous")


def test_a_key_on_its_own_quota_in_redis(redis_client):
    clock = ManualClock(10**18)
    limiter = LeakyBucketRedis(2, 1.0, redis_client, prefix="own", clock=clock)
    assert limiter.check("alice", 2).allowed and not limiter.check("alice")
    d = limiter.check_with_quota("alice", 10, 10.0)  # 2 used stay used
    assert d.allowed and d.remaining == 7 and d.limit == 10
    r = limiter.reserve_with_quota("carol", 5, 1.0, cost=5)
    assert r.admitted and r.wait_ns == 0
    with pytest.raises(InsufficientCapacity):
        limiter.check_with_quota("alice", 10, 10.0, cost=11)


def test_asyncio_quota_changes(redis_url):
    async def main():
        client = redis.asyncio.Redis(host=redis_url.host, port=redis_url.port)
        limiter = AsyncTokenBucketRedis(3, HOURLY, client, prefix="aioq")
        await limiter.check("k", 3)
        await limiter.reconfigure(6, HOURLY, strategy="keep-available")
        left = await limiter.remaining("k")
        own = await limiter.check_with_quota("j", 2, HOURLY)
        await client.aclose()
        return left, own

    left, own = asyncio.run(main())
    assert left == 0  # 0 left stays 0 left
    assert own.allowed and own.limit == 2 and own.remaining == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_keeps_the_parents_quota_change(redis_client):
    limiter = TokenBucketRedis(4, HOURLY, redis_client, prefix="forkq")
    limiter.reconfigure(2, HOURLY)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's limiter is made again: it reads the record
        try:
            n = sum(limiter.allow_request("fresh").allowed for _ in range(4))
            os.write(write, str(n).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.waitpid(pid, 0)
    assert child == b"2"
