//! Several limits on one request, all or nothing (`check_all`): the
//! combined decision's contract, mixed algorithms, keys and quotas, and a
//! real-thread stress test that counts every limit's admissions exactly.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Barrier};

use ratelimit_memory::{
    Bucket, Clock, FixedWindow, KeyedLimiter, LeakyBucket, ManualClock, Rate, Reason,
    SlidingWindow, Strategy, TokenBucket, check_all,
};

const S: u64 = 1_000_000_000;

fn token(capacity: u64, per_second: u64) -> TokenBucket {
    TokenBucket::with_rate(capacity, Rate::per_second(per_second)).unwrap()
}

#[test]
fn the_combined_decision_follows_the_contract() {
    let clock = Arc::new(ManualClock::new(S));
    let per_second = KeyedLimiter::<&str, _, _>::builder(token(3, 3))
        .clock(Arc::clone(&clock))
        .build();
    let per_minute = KeyedLimiter::<&str, _, _>::builder(FixedWindow::per_minute(5).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    let global = Bucket::with_clock(
        LeakyBucket::with_rate(10, Rate::per_second(10)).unwrap(),
        Arc::clone(&clock),
    );
    let request = |cost| {
        check_all([
            &per_second.limit(&"alice", cost),
            &per_minute.limit(&"alice", cost),
            &global.limit(cost),
        ])
    };
    let first = request(2);
    assert!(first.allowed());
    let remaining: Vec<_> = first.limits.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [1, 3, 8]);
    // The smallest remaining, its limit, the largest reset.
    assert_eq!(first.decision.remaining, 1);
    assert_eq!(first.decision.limit, 3);
    assert_eq!(
        first.decision.reset_after,
        Duration::from_secs(59),
        "the minute's window ends at 60 s"
    );
    assert_eq!(first.decision.retry_after, None);

    // Two more: the per-second bucket has 1; the others allow.
    let second = request(2);
    assert!(!second.allowed());
    assert_eq!(second.denied_by().collect::<Vec<_>>(), [0]);
    assert_eq!(
        second.decision.retry_after,
        Some(Duration::from_nanos(333_333_334))
    );
    // Nothing charged: the others report what they still have.
    assert!(second.limits[1].allowed && second.limits[2].allowed);
    assert_eq!(second.limits[1].remaining, 3);
    assert_eq!(second.limits[2].remaining, 8);
    assert_eq!(per_minute.check_n(&"alice", 0).unwrap().remaining, 3);

    // Two limits deny: the largest wait of the two.
    clock.advance(Duration::from_secs(1));
    assert!(request(3).allowed()); // minute: 0 left
    let third = request(1);
    assert_eq!(third.denied_by().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(third.decision.retry_after, Some(Duration::from_secs(58)));
    // A cost one limit can never allow: `retry_after: None`.
    clock.advance(Duration::from_secs(60));
    let never = request(4);
    assert_eq!(never.denied_by().collect::<Vec<_>>(), [0]);
    assert_eq!(never.decision.retry_after, None);
    assert_eq!(never.limits[1].remaining, 5, "nothing charged");
}

#[test]
fn refusals_before_the_quota_deny_the_whole_request() {
    let limiter = KeyedLimiter::<String, _>::with_algorithm(token(5, 1));
    let global = Bucket::new(token(5, 1));
    let long = "x".repeat(300);
    let d = check_all([&limiter.limit(&*long, 1), &global.limit(1)]);
    assert!(!d.allowed());
    assert_eq!(d.decision.reason, Reason::KeyTooLong);
    assert_eq!(d.decision.retry_after, None);
    assert_eq!(global.peek().remaining, 5);
    assert!(limiter.is_empty());

    // No room for a new key: KeyTableFull, with its wait.
    let full = KeyedLimiter::<u32, _>::builder(token(5, 1))
        .max_keys(1)
        .build();
    assert!(full.check(&1).allowed);
    let d = check_all([&full.limit(&2, 1), &global.limit(1)]);
    assert_eq!(d.decision.reason, Reason::KeyTableFull);
    assert!(d.decision.retry_after.is_some());
    assert_eq!(global.peek().remaining, 5);
}

#[test]
fn the_same_key_twice_is_charged_twice_or_not_at_all() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u8, _, _>::builder(SlidingWindow::per_second(5).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    assert!(check_all([&limiter.limit(&1, 2), &limiter.limit(&1, 2)]).allowed());
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 1);
    // Each alone would fit (1 left), together not: denied, nothing charged.
    let d = check_all([&limiter.limit(&1, 1), &limiter.limit(&1, 1)]);
    assert!(!d.allowed());
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 1);
}

#[test]
fn a_key_of_its_own_quota_in_a_multi_check() {
    let limiter = KeyedLimiter::<&str, _>::with_algorithm(token(1, 1));
    let global = Bucket::new(token(100, 100));
    let pro = token(10, 10);
    for _ in 0..10 {
        let d = check_all([&limiter.limit_with_quota(&"pro", 1, &pro), &global.limit(1)]);
        assert!(d.allowed());
    }
    let d = check_all([&limiter.limit_with_quota(&"pro", 1, &pro), &global.limit(1)]);
    assert_eq!((d.allowed(), d.decision.limit), (false, 10));
    assert!(global.peek().remaining >= 90);
}

/// A change of quota applies to the very next `check_all`, as to a plain
/// check, even in a shard no plain check has touched since the change
/// (a shard learns of a change lazily: the multi-limit path must catch it
/// up, not decide under the quota the shard last saw).
#[test]
fn check_all_decides_under_the_latest_quota() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<&str, _, _>::builder(token(10, 10))
        .clock(Arc::clone(&clock))
        .build();
    let global = Bucket::with_clock(token(100, 100), Arc::clone(&clock));
    let d = check_all([&limiter.limit(&"alice", 4), &global.limit(1)]);
    assert_eq!((d.allowed(), d.limits[0].remaining), (true, 6));
    // Down to 5: the 4 used stay used (keep-consumed), 1 left.
    limiter.reconfigure(token(5, 5), Strategy::KeepConsumed);
    let d = check_all([&limiter.limit(&"alice", 2), &global.limit(1)]);
    assert!(!d.allowed(), "2 of the 1 left under the new quota");
    assert_eq!((d.limits[0].limit, d.limits[0].remaining), (5, 1));
    let d = check_all([&limiter.limit(&"alice", 1), &global.limit(1)]);
    assert_eq!(
        (d.allowed(), d.limits[0].limit, d.limits[0].remaining),
        (true, 5, 0)
    );
    // A key not held yet starts under the new quota too.
    limiter.reconfigure(token(3, 3), Strategy::KeepConsumed);
    let d = check_all([&limiter.limit(&"bob", 1), &global.limit(1)]);
    assert_eq!((d.limits[0].limit, d.limits[0].remaining), (3, 2));
    // And a denied request reports every limit under the latest quota,
    // without holding a key it charged nothing.
    limiter.reconfigure(token(7, 7), Strategy::KeepConsumed);
    let d = check_all([&global.limit(1000), &limiter.limit(&"carol", 1)]);
    assert!(!d.allowed());
    assert_eq!((d.limits[1].limit, d.limits[1].remaining), (7, 7));
    assert_eq!(limiter.len(), 2, "alice and bob only");
    let d = check_all([&global.limit(1000), &limiter.limit(&"alice", 1)]);
    // Her 5 units used stay used through both changes: 2 of 7 left.
    assert_eq!((d.limits[1].limit, d.limits[1].remaining), (7, 2));
}

/// A tiny xorshift, one per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

type Counts = Arc<Vec<AtomicU64>>;

fn counts(n: u64) -> Counts {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// Eight threads at a frozen instant: requests checked against a user's
/// token bucket, the user's tenant's fixed window and a global sliding
/// window (all or nothing), mixed with plain checks of a user or of the
/// global limit, which race the all-or-nothing charges and force some to
/// roll back. Every limit's consumption at the end equals, exactly, the
/// costs of the requests it admitted (no charge left by a denied request,
/// no admission lost), and none exceeds its capacity.
#[test]
fn all_or_nothing_under_contention_counts_exactly() {
    const THREADS: u64 = 8;
    const USERS: u64 = 8;
    const TENANTS: u64 = 2;
    for round in 0..200 {
        let clock = Arc::new(ManualClock::new(10 * S));
        let users = Arc::new(
            KeyedLimiter::<u64, _, _>::builder(token(6, 1))
                .clock(Arc::clone(&clock))
                .build(),
        );
        let tenants = Arc::new(
            KeyedLimiter::<u64, _, _>::builder(FixedWindow::per_minute(20).unwrap())
                .clock(Arc::clone(&clock))
                .build(),
        );
        let global = Arc::new(Bucket::with_clock(
            SlidingWindow::per_minute(30).unwrap(),
            Arc::clone(&clock),
        ));
        // Admitted units per user, per tenant, and globally.
        let (user_admitted, tenant_admitted, global_admitted) =
            (counts(USERS), counts(TENANTS), counts(1));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (users, tenants, global) = (
                    Arc::clone(&users),
                    Arc::clone(&tenants),
                    Arc::clone(&global),
                );
                let (ua, ta, ga) = (
                    Arc::clone(&user_admitted),
                    Arc::clone(&tenant_admitted),
                    Arc::clone(&global_admitted),
                );
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t + 1) * (round + 1)));
                    start.wait();
                    for _ in 0..60 {
                        let user = rng.below(USERS);
                        let tenant = user % TENANTS;
                        let cost = 1 + rng.below(2);
                        match rng.below(4) {
                            0 => {
                                if users.check_n(&user, cost).unwrap().allowed {
                                    ua[user as usize].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                            1 => {
                                if global.check_n(cost).unwrap().allowed {
                                    ga[0].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                            _ => {
                                let d = check_all([
                                    &users.limit(&user, cost),
                                    &tenants.limit(&tenant, cost),
                                    &global.limit(cost),
                                ]);
                                if d.allowed() {
                                    ua[user as usize].fetch_add(cost, Ordering::Relaxed);
                                    ta[tenant as usize].fetch_add(cost, Ordering::Relaxed);
                                    ga[0].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for user in 0..USERS {
            let used = 6 - users.check_n(&user, 0).unwrap().remaining;
            let admitted = user_admitted[user as usize].load(Ordering::Relaxed);
            assert_eq!(used, admitted, "round {round}: user {user}");
        }
        for tenant in 0..TENANTS {
            let used = 20 - tenants.check_n(&tenant, 0).unwrap().remaining;
            let admitted = tenant_admitted[tenant as usize].load(Ordering::Relaxed);
            assert_eq!(used, admitted, "round {round}: tenant {tenant}");
        }
        let used = 30 - global.peek().remaining;
        assert_eq!(
            used,
            global_admitted[0].load(Ordering::Relaxed),
            "round {round}: global"
        );
        // The traffic was enough to exhaust the global limit every round.
        assert!(used >= 29, "round {round}: {used}");
        assert_eq!(clock.now_ns(), 10 * S);
    }
}

/// Buckets only, eight threads at a frozen instant: two shared buckets (a
/// token and a leaky bucket) in front of small per-pair token buckets, so
/// that the shared ones are held by their writer flags and most requests
/// are denied by the small bucket after charging the shared ones, whose
/// charges are then rolled back while other checks' charges are stacked on
/// them; plain checks of the small buckets and of the shared token bucket
/// race them. Every bucket's consumption at the end equals, exactly, the
/// costs it admitted.
#[test]
fn all_or_nothing_over_shared_buckets_counts_exactly() {
    const THREADS: u64 = 8;
    const SMALL: u64 = 4;
    for round in 0..200 {
        let clock = Arc::new(ManualClock::new(10 * S));
        let shared = Arc::new(Bucket::with_clock(token(40, 1), Arc::clone(&clock)));
        let queue = Arc::new(Bucket::with_clock(
            LeakyBucket::with_rate(50, Rate::per_second(1)).unwrap(),
            Arc::clone(&clock),
        ));
        let small: Arc<Vec<_>> = Arc::new(
            (0..SMALL)
                .map(|_| Bucket::with_clock(token(3, 1), Arc::clone(&clock)))
                .collect(),
        );
        let (shared_admitted, queue_admitted, small_admitted) =
            (counts(1), counts(1), counts(SMALL));
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (shared, queue, small) =
                    (Arc::clone(&shared), Arc::clone(&queue), Arc::clone(&small));
                let (sa, qa, ma) = (
                    Arc::clone(&shared_admitted),
                    Arc::clone(&queue_admitted),
                    Arc::clone(&small_admitted),
                );
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((t + 1) * (round + 7)));
                    start.wait();
                    for _ in 0..40 {
                        let i = rng.below(SMALL) as usize;
                        let cost = 1 + rng.below(2);
                        match rng.below(5) {
                            0 => {
                                if small[i].check_n(cost).unwrap().allowed {
                                    ma[i].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                            1 => {
                                if shared.check_n(cost).unwrap().allowed {
                                    sa[0].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                            2 => {
                                // Two flags, taken in address order whatever
                                // the order given.
                                let d = check_all([
                                    &queue.limit(cost),
                                    &shared.limit(cost),
                                    &small[i].limit(cost),
                                ]);
                                if d.allowed() {
                                    qa[0].fetch_add(cost, Ordering::Relaxed);
                                    sa[0].fetch_add(cost, Ordering::Relaxed);
                                    ma[i].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                            _ => {
                                let d = check_all([
                                    &shared.limit(cost),
                                    &queue.limit(cost),
                                    &small[i].limit(cost),
                                ]);
                                if d.allowed() {
                                    qa[0].fetch_add(cost, Ordering::Relaxed);
                                    sa[0].fetch_add(cost, Ordering::Relaxed);
                                    ma[i].fetch_add(cost, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for (i, bucket) in small.iter().enumerate() {
            let used = 3 - bucket.peek().remaining;
            assert_eq!(
                used,
                small_admitted[i].load(Ordering::Relaxed),
                "round {round}: small {i}"
            );
        }
        let used = 40 - shared.peek().remaining;
        let admitted = shared_admitted[0].load(Ordering::Relaxed);
        assert_eq!(used, admitted, "round {round}: shared");
        let queued = 50 - queue.peek().remaining;
        assert_eq!(
            queued,
            queue_admitted[0].load(Ordering::Relaxed),
            "round {round}: queue"
        );
        // Every small bucket was exhausted: most requests were denied by it
        // after charging the shared buckets.
        let small_used: u64 = small.iter().map(|b| 3 - b.peek().remaining).sum();
        assert!(small_used >= 3 * SMALL - 2, "round {round}: {small_used}");
        assert_eq!(clock.now_ns(), 10 * S);
    }
}
