//! Per-key quotas: a plan looked up per key, with overrides. A key whose
//! quota changes keeps what it consumed (keep-consumed, at the time of the
//! call); a key on a quota of its own is not touched by `reconfigure`; back
//! on the limiter's quota, it is converted again.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use ratelimit_memory::{
    Algorithm, Clock, KeyedLimiter, LeakyBucket, ManualClock, Rate, Strategy, TokenBucket,
};

const S: u64 = 1_000_000_000;

fn per_minute(capacity: u64) -> TokenBucket {
    TokenBucket::with_rate(capacity, Rate::per_minute(capacity)).unwrap()
}

/// What an application writes: plans looked up from the key, and the
/// limiter's quota for everyone else.
#[test]
fn plans_looked_up_per_key() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<String, _, _>::builder(per_minute(2))
        .clock(Arc::clone(&clock))
        .build();
    let mut plans: HashMap<&str, TokenBucket> = HashMap::new();
    plans.insert("acme", per_minute(100));
    let check = |key: &str, plans: &HashMap<&str, TokenBucket>| match plans.get(key) {
        Some(plan) => limiter.check_with_quota(key, 1, plan).unwrap(),
        None => limiter.check(key),
    };
    for _ in 0..100 {
        assert!(check("acme", &plans).allowed);
    }
    assert!(!check("acme", &plans).allowed);
    assert!(check("bob", &plans).allowed);
    assert!(check("bob", &plans).allowed);
    assert!(!check("bob", &plans).allowed);

    // Bob upgrades: his 2 used units stay used, out of 100.
    plans.insert("bob", per_minute(100));
    let d = check("bob", &plans);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 100, 97));
    // Acme downgrades to the default: 100 used of 2.
    plans.remove("acme");
    let d = check("acme", &plans);
    assert_eq!((d.allowed, d.limit, d.remaining), (false, 2, 0));
    // 100 units at the new rate (2 per minute) take 50 minutes to drain.
    assert_eq!(d.reset_after, Duration::from_secs(50 * 60));
}

#[test]
fn own_quotas_are_untouched_by_reconfiguration() {
    let clock = Arc::new(ManualClock::new(S));
    let default = LeakyBucket::with_rate(4, Rate::per_second(4)).unwrap();
    let limiter = KeyedLimiter::<u8, _, _>::builder(default)
        .clock(Arc::clone(&clock))
        .build();
    // Same quota as the default, but its own: reconfigure leaves it alone.
    assert!(limiter.check_with_quota(&1, 2, &default).unwrap().allowed);
    assert!(limiter.check_n(&2, 2).unwrap().allowed);
    limiter.reconfigure(
        LeakyBucket::with_rate(8, Rate::per_second(8)).unwrap(),
        Strategy::Reset,
    );
    let own = limiter.check_with_quota(&1, 0, &default).unwrap();
    assert_eq!((own.limit, own.remaining), (4, 2));
    let reset = limiter.check_n(&2, 0).unwrap();
    assert_eq!((reset.limit, reset.remaining), (8, 8));
    // Back on the limiter's quota: converted, keep-consumed (2 units of
    // 250 ms become 2 units of 125 ms).
    let back = limiter.check_n(&1, 0).unwrap();
    assert_eq!((back.limit, back.remaining), (8, 6));
    assert_eq!(back.reset_after, Duration::from_millis(250));
    assert_eq!(limiter.len(), 2);
}

#[test]
fn reservations_under_a_quota_of_their_own() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<&str, _, _>::builder(per_minute(1))
        .clock(Arc::clone(&clock))
        .build();
    let fast = TokenBucket::with_rate(2, Rate::per_second(10)).unwrap();
    let waits: Vec<_> = (0..4)
        .map(|_| {
            limiter
                .reserve_with_quota(&"k", 1, None, &fast)
                .unwrap()
                .wait()
                .unwrap()
                .as_millis()
        })
        .collect();
    assert_eq!(waits, [0, 0, 100, 200]);
    assert!(limiter.reserve_with_quota(&"k", 3, None, &fast).is_err());
}

/// Keys on their own quotas are swept like the others once back to their
/// initial state, and count towards `max_keys`.
#[test]
fn own_quotas_are_reclaimed_and_bounded() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u32, _, _>::builder(per_minute(1))
        .clock(Arc::clone(&clock))
        .max_keys(4)
        .shards(1)
        .build();
    let own = TokenBucket::with_rate(1, Rate::per_second(1)).unwrap();
    for key in 0..4 {
        assert!(limiter.check_with_quota(&key, 1, &own).unwrap().allowed);
    }
    assert_eq!(limiter.len(), 4);
    assert_eq!(
        limiter.check(&9).reason,
        ratelimit_memory::Reason::KeyTableFull
    );
    clock.advance(Duration::from_secs(1));
    // All four are back to full: swept to make room.
    assert!(limiter.check(&9).allowed);
    assert_eq!(limiter.len(), 1);
    // A swept key had nothing to remember: under its quota, as new.
    let d = limiter.check_with_quota(&0, 1, &own).unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 0, 1));
}

/// Conversions between quotas are the core's, at the time of the call.
#[test]
fn a_change_of_own_quota_converts_at_the_call() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u8, _, _>::builder(per_minute(10))
        .clock(Arc::clone(&clock))
        .build();
    let a = TokenBucket::with_rate(10, Rate::per_second(10)).unwrap();
    let b = TokenBucket::with_rate(3, Rate::per_second(1)).unwrap();
    assert!(limiter.check_with_quota(&1, 7, &a).unwrap().allowed); // tat = 1.7 s
    clock.advance(Duration::from_millis(300)); // 3 back: 4 in use
    let at = clock.now_ns();
    let converted = a.convert(S + 700_000_000, at, &b, Strategy::KeepConsumed);
    assert_eq!(
        limiter.check_with_quota(&1, 0, &b).unwrap(),
        b.inspect(converted, at)
    );
    assert_eq!(converted, at + 4 * S);
}
