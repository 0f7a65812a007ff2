//! Corrupt state in Redis heals itself (issue: a value under the prefix
//! overwritten with `garbage` sent the key to the fallback forever, and a
//! huge number gave a permanent 429 with no Retry-After). A corrupt state
//! is read as fully consumed (never over-admits), rewritten so with a TTL
//! (heals within τ), counted and reported by `inspect`. Client time: the
//! quota's period passes when the test says so.

#![allow(clippy::std_instead_of_core)]

use std::time::Duration;

use ratelimit_core::{Quota, Rate, Reason};
use ratelimit_redis::{
    FailurePolicy, LeakyBucket, RedisLimiter, RedisPool, TimeSource, TokenBucket,
};
use ratelimit_testkit::RedisServer;
use redis::Commands;

const S: u64 = 1_000_000_000;
const NOW: u64 = 1_700_000_000 * S;

fn limiter(server: &RedisServer, prefix: &str) -> RedisLimiter<TokenBucket> {
    // 4 per minute: T = 15 s, τ = 60 s.
    RedisLimiter::builder(TokenBucket::new(
        Quota::new(4, Rate::per_minute(4)).unwrap(),
    ))
    .prefix(prefix)
    .failure_policy(FailurePolicy::Fallback)
    .time_source(TimeSource::Client {
        ttl_margin: Duration::from_secs(1),
    })
    .build(RedisPool::open(&server.url()).unwrap())
    .unwrap()
}

/// Overwrites a state key with something that is not a state.
type Corrupt<'a> = &'a dyn Fn(&mut redis::Connection, &[u8]);

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Each corruption: Redis decides (no fallback), denies with a Retry-After,
/// repairs the key with a TTL of about τ, and the key is whole again one
/// period later.
#[test]
fn corrupt_states_are_repaired_as_fully_consumed() {
    let server = RedisServer::start();
    let mut con = raw(&server);
    let corruptions: [(&str, Corrupt<'_>); 5] = [
        ("garbage", &|c, k| c.set::<_, _, ()>(k, "garbage").unwrap()),
        ("empty", &|c, k| c.set::<_, _, ()>(k, "").unwrap()),
        ("huge", &|c, k| {
            c.set::<_, _, ()>(k, "99999999999999999999").unwrap()
        }),
        // 10^5 days ahead: within u64, beyond the 2^53 ns horizon.
        ("far", &|c, k| {
            c.set::<_, _, ()>(k, (NOW + 8_640_000_000 * S).to_string())
                .unwrap()
        }),
        ("hash", &|c, k| {
            c.del::<_, ()>(k).unwrap();
            c.hset::<_, _, _, ()>(k, "f", "v").unwrap();
        }),
    ];
    for (name, corrupt) in corruptions {
        let l = limiter(&server, name);
        let key = l.redis_key("k").unwrap();
        assert!(l.check_at("k", 1, NOW).unwrap().allowed);
        corrupt(&mut con, &key);
        let state = l.inspect("k").unwrap();
        assert!(state.corrupt, "{name}: inspect says so");

        let d = l.check_at("k", 1, NOW).unwrap();
        assert_eq!(
            d.reason,
            Reason::Quota,
            "{name}: Redis decides, not the fallback"
        );
        assert!(!d.allowed, "{name}: never over-admits");
        assert_eq!(d.retry_after, Some(Duration::from_secs(15)), "{name}");
        assert_eq!(d.remaining, 0, "{name}");
        assert_eq!(l.stats().corrupt_states_repaired, 1, "{name}: counted");
        assert_eq!(l.stats().policy_decisions, 0, "{name}");
        // Rewritten as a state with a TTL: τ + the margin.
        let stored: String = con.get(&key).unwrap();
        assert_eq!(stored.parse::<u64>().unwrap(), NOW + 60 * S, "{name}");
        let pttl: i64 = con.pttl(&key).unwrap();
        assert!((59_000..=61_000).contains(&pttl), "{name}: pttl {pttl}");
        assert!(!l.inspect("k").unwrap().corrupt);
        // Denied again without another repair, then whole a period later.
        assert!(!l.check_at("k", 1, NOW + S).unwrap().allowed);
        assert_eq!(l.stats().corrupt_states_repaired, 1);
        let later = l.check_at("k", 1, NOW + 60 * S).unwrap();
        assert!(later.allowed && later.remaining == 3, "{name}: {later:?}");
    }
}

/// The other operations repair too: reserve (both buckets) and the batch.
#[test]
fn reserve_and_batch_repair_too() {
    let server = RedisServer::start();
    let mut con = raw(&server);
    let token = limiter(&server, "reserve");
    let _: () = con.set(token.redis_key("k").unwrap(), "garbage").unwrap();
    let r = token.reserve_at("k", 1, Some(0), NOW).unwrap();
    assert_eq!(r.reason(), Reason::Quota);
    assert!(!r.is_admitted());
    assert_eq!(r.retry_after(), Some(Duration::from_secs(15)));
    assert_eq!(token.stats().corrupt_states_repaired, 1);
    // A token bucket may borrow on the repaired state: it waits a period.
    let r = token.reserve_at("k", 1, None, NOW).unwrap();
    assert!(r.is_admitted());
    assert_eq!(r.wait(), Some(Duration::from_secs(15)));

    let leaky = RedisLimiter::builder(LeakyBucket::new(
        Quota::new(4, Rate::per_minute(4)).unwrap(),
    ))
    .prefix("leaky")
    .build(RedisPool::open(&server.url()).unwrap())
    .unwrap();
    let _: () = con.set(leaky.redis_key("k").unwrap(), "12x").unwrap();
    let r = leaky.reserve_at("k", 1, None, NOW).unwrap();
    assert!(
        !r.is_admitted() && r.retry_after() == Some(Duration::from_secs(15)),
        "{r:?}"
    );
    assert_eq!(leaky.stats().corrupt_states_repaired, 1);

    let batch = limiter(&server, "batch");
    let _: () = con.set(batch.redis_key("bad").unwrap(), "garbage").unwrap();
    let answers = batch
        .check_batch_at(&[("good", 1), ("bad", 1), ("bad", 0)], NOW)
        .unwrap();
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    assert!(answers[0].allowed);
    assert!(!answers[1].allowed && answers[1].retry_after.is_some());
    assert!(answers[2].allowed && answers[2].remaining == 0);
    assert!(answers.iter().all(|d| d.reason == Reason::Quota));
    assert_eq!(batch.stats().corrupt_states_repaired, 1);
}
