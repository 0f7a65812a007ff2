//! Bad input gets a clear error or the contract's answer, never a panic:
//! configurations, costs, keys of every shape, and times at the edges.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::sync::Arc;

use ratelimit_memory::{
    Bucket, ConfigError, InsufficientCapacity, KeyedLimiter, LeakyBucket, LeakyBucketMemory,
    ManualClock, Rate, Reason, TokenBucket, TokenBucketMemory,
};

#[test]
fn bad_configurations_are_clear_errors() {
    let cases: [(u64, f64, ConfigError); 10] = [
        (0, 1.0, ConfigError::ZeroCapacity),
        (10, 0.0, ConfigError::InvalidRate),
        (10, -0.0, ConfigError::InvalidRate),
        (10, -1.0, ConfigError::InvalidRate),
        (10, f64::NAN, ConfigError::InvalidRate),
        (10, f64::INFINITY, ConfigError::InvalidRate),
        (10, f64::NEG_INFINITY, ConfigError::InvalidRate),
        (10, 2e9, ConfigError::RateTooHigh),
        (10, 1e-12, ConfigError::RateTooLow),
        (u64::MAX, 1.0, ConfigError::ToleranceOverflow),
    ];
    for (capacity, rate, error) in cases {
        let token = TokenBucketMemory::new(capacity, rate).unwrap_err();
        let leaky = LeakyBucketMemory::new(capacity, rate).unwrap_err();
        assert_eq!((token, leaky), (error, error), "{capacity} at {rate}/s");
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(
        KeyedLimiter::<u64, TokenBucket>::with_rate(5, Rate::per_second(0)).unwrap_err(),
        ConfigError::InvalidRate
    );
    assert_eq!(
        KeyedLimiter::<u64, LeakyBucket>::with_rate(5, Rate::new(1, Duration::ZERO)).unwrap_err(),
        ConfigError::RateTooHigh
    );
    assert_eq!(
        KeyedLimiter::<u64, TokenBucket>::new(0, 1.0)
            .unwrap_err()
            .to_string(),
        "capacity must be at least 1"
    );
    // The edges that are allowed.
    assert!(TokenBucketMemory::new(1, 1e9).is_ok());
    assert!(LeakyBucketMemory::new(1, 1e-9).is_ok());
}

fn limiter(
    capacity: u64,
) -> (
    Arc<ManualClock>,
    KeyedLimiter<String, TokenBucket, Arc<ManualClock>>,
) {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let limiter =
        KeyedLimiter::builder(TokenBucket::with_rate(capacity, Rate::per_second(1)).unwrap())
            .clock(Arc::clone(&clock))
            .build();
    (clock, limiter)
}

#[test]
fn cost_above_capacity_is_an_error_and_changes_nothing() {
    let (_, keyed) = limiter(3);
    let bucket = Bucket::with_clock(
        LeakyBucket::with_rate(3, Rate::per_second(1)).unwrap(),
        ManualClock::new(5),
    );
    let err = InsufficientCapacity {
        cost: 4,
        capacity: 3,
    };
    assert_eq!(keyed.check_n("k", 4), Err(err));
    assert_eq!(keyed.reserve("k", 4, None), Err(err));
    assert_eq!(bucket.check_n(4), Err(err));
    assert_eq!(bucket.reserve(4, Some(Duration::MAX)), Err(err));
    assert!(keyed.check_n("k", u64::MAX).is_err());
    assert!(bucket.reserve(u64::MAX, None).is_err());
    assert_eq!(
        err.to_string(),
        "cost 4 exceeds the capacity 3: the request can never succeed"
    );
    // Nothing was stored or consumed.
    assert!(keyed.is_empty());
    assert_eq!(keyed.check_n("k", 3).unwrap().remaining, 0);
    assert_eq!(bucket.check_n(3).unwrap().remaining, 0);
}

#[test]
fn cost_zero_consumes_nothing_and_fails_only_in_debt() {
    let (_, keyed) = limiter(2);
    let d = keyed.check_n("k", 0).unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 2);
    assert!(keyed.is_empty(), "a cost of zero stores nothing");
    // Four reservations of one: two at once, then 1 s and 2 s of debt.
    for _ in 0..4 {
        assert!(keyed.reserve("k", 1, None).unwrap().is_admitted());
    }
    let d = keyed.check_n("k", 0).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(Duration::from_secs(2)));
    assert_eq!(d.remaining, 0);
    let r = keyed.reserve("k", 0, Some(Duration::ZERO)).unwrap();
    assert!(!r.is_admitted());
}

#[test]
fn any_hashable_key_works() {
    let (_, strings) = limiter(1);
    // Keys of any bytes up to the bound on key length (256 by default).
    let long = "x".repeat(256);
    for key in ["", " ", "user123", "ключ", &long, &long[1..]] {
        assert!(strings.check(key).allowed, "{:.10}", key);
        assert!(!strings.check(key).allowed, "{:.10}", key);
    }
    assert_eq!(strings.len(), 6);
    // A longer key is refused for good, and not stored.
    let d = strings.check(&*"x".repeat(257));
    assert_eq!(
        (d.allowed, d.retry_after, d.reason),
        (false, None, Reason::KeyTooLong)
    );
    assert_eq!(strings.len(), 6);
    // Lifting the bound stores keys of any length.
    let unbounded =
        KeyedLimiter::<String, _>::builder(TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap())
            .max_key_len(usize::MAX)
            .build();
    let huge = "x".repeat(1 << 20);
    assert!(unbounded.check(&*huge).allowed);
    assert!(!unbounded.check(&*huge).allowed);
    assert!(strings.check(&String::from("user124")).allowed);

    let tuples = KeyedLimiter::<(u32, String), _>::with_algorithm(
        TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap(),
    );
    assert!(tuples.check(&(1, "a".to_owned())).allowed);
    assert!(tuples.check(&(2, "a".to_owned())).allowed);
    assert!(tuples.check(&(1, "b".to_owned())).allowed);
    assert!(!tuples.check(&(1, "a".to_owned())).allowed);

    let ips = KeyedLimiter::<IpAddr, _>::with_algorithm(
        LeakyBucket::with_rate(1, Rate::per_hour(1)).unwrap(),
    );
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert!(ips.check(&v4).allowed);
    assert!(ips.check(&v6).allowed);
    assert!(!ips.check(&v4).allowed);
    assert_eq!(ips.check(&v6).reason, Reason::Quota);

    let ints = KeyedLimiter::<i128, TokenBucket>::new(1, 1.0).unwrap();
    assert!(ints.check(&i128::MIN).allowed);
    assert!(ints.check(&i128::MAX).allowed);
    assert!(!ints.check(&i128::MIN).allowed);
    assert_eq!(ints.len(), 2);
}

#[test]
fn times_at_the_edges_never_panic() {
    let (clock, keyed) = limiter(2);
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(2, Rate::per_second(1)).unwrap(),
        Arc::clone(&clock),
    );
    for now in [0, 1, u64::MAX - 1_000_000_000, u64::MAX - 1, u64::MAX, 7] {
        clock.set_ns(now);
        let _ = keyed.check("k");
        let _ = keyed.reserve("k", 2, None);
        let _ = keyed.reserve("k", 1, Some(Duration::MAX));
        let _ = bucket.check();
        let _ = bucket.reserve(1, None);
    }
    // At u64::MAX a state past it cannot be stored: refused, not wrapped.
    clock.set_ns(u64::MAX);
    let d = keyed.check("fresh");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, None);
}

#[test]
fn the_limiter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenBucketMemory>();
    assert_send_sync::<KeyedLimiter<u64, LeakyBucket, Arc<ManualClock>>>();
    assert_send_sync::<Bucket<TokenBucket>>();
}

#[test]
fn max_keys_zero_stores_nothing() {
    let limiter =
        KeyedLimiter::<u8, _>::builder(TokenBucket::with_rate(1, Rate::per_second(1)).unwrap())
            .max_keys(0)
            .build();
    let d = limiter.check(&1);
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::KeyTableFull);
    assert!(limiter.check_n(&1, 0).unwrap().allowed);
    assert!(limiter.is_empty());
}

#[test]
fn shard_counts_are_powers_of_two_within_the_bound() {
    let algorithm = TokenBucket::with_rate(1, Rate::per_second(1)).unwrap();
    let shards = |max_keys: usize, asked: Option<usize>| {
        let b = KeyedLimiter::<u32, _>::builder(algorithm).max_keys(max_keys);
        match asked {
            Some(n) => b.shards(n),
            None => b,
        }
        .build()
        .shards()
    };
    assert_eq!(shards(1 << 20, None), 64);
    assert_eq!(shards(10_000, None), 64);
    assert_eq!(shards(1000, None), 8);
    assert_eq!(shards(5, None), 1);
    assert_eq!(shards(0, None), 1);
    assert_eq!(shards(1 << 20, Some(0)), 1);
    assert_eq!(shards(1 << 20, Some(12)), 8);
    assert_eq!(shards(1 << 20, Some(1000)), 64);
    assert_eq!(shards(5, Some(64)), 4);
    // One key per shard: each shard's share is 1, so exactly 64 distinct
    // keys are admitted, whichever shards they hash to.
    let limiter = KeyedLimiter::<u32, _>::builder(algorithm)
        .max_keys(64)
        .shards(64)
        .build();
    let admitted = (0..10_000).filter(|k| limiter.check(k).allowed).count();
    assert_eq!(admitted, 64);
}
