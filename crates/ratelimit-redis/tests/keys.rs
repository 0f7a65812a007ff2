//! Keys: typed keys in their documented byte form, a bound on key bytes
//! (issue: 390 KB API keys became 390 KB Redis key names and fallback
//! entries), and hashed keys (issue: raw API keys became Redis key names,
//! visible to anyone with `SCAN`).

#![allow(clippy::std_instead_of_core)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ratelimit_core::{Quota, Rate};
use ratelimit_redis::{
    DEFAULT_MAX_KEY_LEN, FailurePolicy, RedisLimitError, RedisLimiter, RedisPool, TokenBucket,
};
use ratelimit_testkit::RedisServer;
use redis::Commands;

fn builder() -> ratelimit_redis::RedisLimiterBuilder<TokenBucket> {
    RedisLimiter::builder(TokenBucket::new(Quota::new(2, Rate::per_hour(1)).unwrap()))
}

fn scan(server: &RedisServer) -> Vec<Vec<u8>> {
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<Vec<u8>> = con
        .scan::<Vec<u8>>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    keys.sort();
    keys
}

#[test]
fn typed_keys_are_stored_in_their_documented_form() {
    let server = RedisServer::start();
    let l = builder()
        .prefix("t")
        .build(RedisPool::open(&server.url()).unwrap())
        .unwrap();
    let v4 = Ipv4Addr::new(192, 0, 2, 1);
    assert!(l.check(&IpAddr::V4(v4)).unwrap().allowed);
    // The same client through a dual-stack socket: the same key.
    assert!(l.check(&IpAddr::V6(v4.to_ipv6_mapped())).unwrap().allowed);
    assert!(!l.check(&v4).unwrap().allowed);
    // An integer and its decimal text share a state.
    assert!(l.check(&42u64).unwrap().allowed);
    assert_eq!(l.check("42").unwrap().remaining, 0);
    assert!(l.check(&("tenant:7", 3u8)).unwrap().allowed);
    assert!(
        l.check(&SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 443)))
            .unwrap()
            .allowed
    );
    assert!(
        l.check_batch(&[(7i32, 1), (-7, 1)])
            .unwrap()
            .iter()
            .all(|d| d.as_ref().unwrap().allowed)
    );
    let want: Vec<&[u8]> = vec![
        b"t|-7",
        b"t|192.0.2.1",
        b"t|42",
        b"t|7",
        b"t|[2001:db8::1]:443",
        b"t|tenant\\:7:3",
    ];
    assert_eq!(scan(&server), want);
}

/// The 390 KB `X-API-Key` flood of the issue, against the default bound:
/// refused before anything is sent, under every policy.
#[test]
fn keys_longer_than_the_bound_are_refused_before_anything_is_sent() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let l = builder()
        .failure_policy(FailurePolicy::Fallback)
        .build(pool.clone())
        .unwrap();
    assert_eq!(l.max_key_len(), DEFAULT_MAX_KEY_LEN);
    assert!(l.check(&"k".repeat(256)).unwrap().allowed);
    for i in 0..50u8 {
        let mut key = vec![b'x'; 390_000];
        key[0] = i;
        let e = l.check(&key).unwrap_err();
        assert!(
            matches!(
                e,
                RedisLimitError::KeyTooLong {
                    len: 390_000,
                    max: 256
                }
            ),
            "{e}"
        );
        assert!(!e.is_redis_failure());
        assert!(matches!(
            l.reserve(&key, 1, None),
            Err(RedisLimitError::KeyTooLong { .. })
        ));
        assert!(matches!(
            l.check_batch(&[(&key[..], 1)]),
            Err(RedisLimitError::KeyTooLong { .. })
        ));
    }
    assert_eq!(
        scan(&server).len(),
        1,
        "only the 256-byte key reached Redis"
    );
    assert_eq!(l.stats().policy_decisions, 0);
    // The bound is the caller's to raise.
    let raised = builder()
        .prefix("raised")
        .max_key_len(1 << 20)
        .build(pool)
        .unwrap();
    assert!(raised.check(&vec![b'x'; 390_000]).unwrap().allowed);
}

/// Hashed keys: no key text in Redis, any length, shared by every limiter
/// with the same secret, apart for another secret.
#[test]
fn hashed_keys_hide_the_key_and_bound_its_bytes() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let secret = b"an-example-secret-of-32-bytes!!!".to_vec();
    let a = builder()
        .prefix("h")
        .hash_keys(secret.clone())
        .build(pool.clone())
        .unwrap();
    let b = builder()
        .prefix("h")
        .hash_keys(secret)
        .build(pool.clone())
        .unwrap();
    assert!(a.hashes_keys());
    assert!(
        !format!("{a:?}").contains("example"),
        "the secret stays out of Debug"
    );
    let api_key = "sk_live_4f9a7c2e";
    assert!(a.check(api_key).unwrap().allowed);
    assert_eq!(b.check(api_key).unwrap().remaining, 0, "one state for both");
    // 100 keys of 390 KB: each stored under 34 bytes.
    for i in 0..100u8 {
        let mut key = vec![b'k'; 390_000];
        key[0] = i;
        assert!(a.check(&key).unwrap().allowed);
    }
    let keys = scan(&server);
    assert_eq!(keys.len(), 101);
    for k in &keys {
        assert_eq!(k.len(), "h|".len() + 32, "{}", String::from_utf8_lossy(k));
        assert!(!String::from_utf8_lossy(k).contains("sk_live"));
    }
    // Another secret: another key.
    let other = builder()
        .prefix("h")
        .hash_keys(b"another-secret-of-enough-bytes".to_vec())
        .build(pool.clone())
        .unwrap();
    assert!(other.check(api_key).unwrap().remaining == 1);
    // A secret too short is refused.
    let e = builder()
        .hash_keys(b"short".to_vec())
        .build(pool)
        .unwrap_err();
    assert!(matches!(e, RedisLimitError::InvalidOption(_)), "{e}");
}
