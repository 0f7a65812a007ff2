//! Model-checked interleavings of the compare-and-swap helper and of the
//! keyed map's locks (every atomic and lock of the crate is loom's under
//! `--cfg ratelimit_loom`). Each test is a tiny model with one property:
//!
//! ```text
//! RUSTFLAGS="--cfg ratelimit_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target-memory-loom \
//!     cargo test -p ratelimit-memory --release --test loom
//! ```
//!
//! Time comes from a `ManualClock` set before the threads start: loom
//! explores the orders of the threads' steps, and the clock is not one of
//! them. What loom cannot cover (real weak-memory hardware beyond the C++
//! model, many threads, long runs) is backed by `tests/stress.rs`; see
//! `docs/concurrency.md`.

#![cfg(ratelimit_loom)]

use loom::sync::Arc;
use loom::thread;
use ratelimit_memory::{
    Bucket, FixedWindow, KeyedLimiter, LeakyBucket, ManualClock, Rate, SlidingWindow, Strategy,
    TokenBucket, check_all,
};

const S: u64 = 1_000_000_000;

/// A hasher with a fixed seed: loom replays each execution and needs the
/// model to be deterministic (the default hasher is seeded at random).
type FixedHasher = core::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

fn token(capacity: u64) -> TokenBucket {
    TokenBucket::with_rate(capacity, Rate::per_second(1)).unwrap()
}

/// Three threads race for two tokens through the CAS helper: exactly two
/// are admitted in every interleaving (none lost, none counted twice).
#[test]
fn loom_cas_helper_loses_no_update() {
    loom::model(|| {
        let bucket = Arc::new(Bucket::with_clock(token(2), ManualClock::new(S)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                thread::spawn(move || bucket.check().allowed)
            })
            .collect();
        let mine = bucket.check().allowed;
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .chain([mine])
            .filter(|&a| a)
            .count();
        assert_eq!(admitted, 2);
        assert!(!bucket.check().allowed);
    });
}

/// Two leaky-bucket reservations at one instant get the two distinct
/// departure slots, 0 and T, whichever wins.
#[test]
fn loom_contended_reservations_get_distinct_waits() {
    loom::model(|| {
        let leaky = LeakyBucket::with_rate(2, Rate::per_second(1)).unwrap();
        let bucket = Arc::new(Bucket::with_clock(leaky, ManualClock::new(S)));
        let other = {
            let bucket = Arc::clone(&bucket);
            thread::spawn(move || bucket.reserve(1, None).unwrap())
        };
        let mine = bucket.reserve(1, None).unwrap();
        let other = other.join().unwrap();
        let mut waits = [
            mine.wait().expect("admitted").as_nanos(),
            other.wait().expect("admitted").as_nanos(),
        ];
        waits.sort_unstable();
        assert_eq!(waits, [0, u128::from(S)]);
    });
}

/// Two threads see the same key for the first time: exactly one entry is
/// created (the write-locked path looks again) and exactly one admitted.
#[test]
fn loom_racing_first_checks_create_one_entry() {
    loom::model(|| {
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _, _>::builder(token(1))
                .shards(1)
                .hasher(FixedHasher::default())
                .clock(ManualClock::new(S))
                .build(),
        );
        let other = {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || limiter.check(&"k").allowed)
        };
        let mine = limiter.check(&"k").allowed;
        let other = other.join().unwrap();
        assert!(mine ^ other, "exactly one of two admitted");
        assert_eq!(limiter.len(), 1);
    });
}

/// A key that is back to full (`tat ≤ now`, so reclaimable) is checked by
/// two threads while a third thread's new key fills the shard and sweeps
/// it. Whatever the order, exactly one of the two checks is admitted and
/// that consumption survives: a check of the same key afterwards is
/// refused. (A sweep that removed the entry between a checker's read and
/// its swap, or after its swap, would forget it and admit both.)
#[test]
fn loom_sweep_racing_a_check_forgets_no_consumption() {
    loom::model(|| {
        let clock = std::sync::Arc::new(ManualClock::new(S));
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _, _>::builder(token(1))
                .max_keys(2)
                .shards(1)
                .hasher(FixedHasher::default())
                .clock(std::sync::Arc::clone(&clock))
                .build(),
        );
        // At 1 s: a and x are spent until 2 s, and the shard is full.
        assert!(limiter.check(&"a").allowed);
        assert!(limiter.check(&"x").allowed);
        clock.set_ns(2 * S); // both are back to full: reclaimable
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                thread::spawn(move || limiter.check(&"a").allowed)
            })
            .collect();
        // b needs a slot: the shard is full, so it sweeps.
        let b = limiter.check(&"b");
        let admitted = checkers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&a| a)
            .count();
        assert_eq!(admitted, 1, "a has one token at 2 s");
        assert!(b.allowed, "x at least was reclaimable");
        assert!(
            !limiter.check(&"a").allowed,
            "a's consumption was forgotten"
        );
        assert!(!limiter.check(&"b").allowed);
        assert!(limiter.len() <= 2);
    });
}

/// The window algorithms' 128-bit state goes through the same helper: three
/// threads race for a fixed window's two units, and for a sliding window's
/// two through the keyed map; exactly two are admitted in every
/// interleaving.
#[test]
fn loom_window_word_loses_no_update() {
    loom::model(|| {
        let window = FixedWindow::per_second(2).unwrap();
        let bucket = Arc::new(Bucket::with_clock(window, ManualClock::new(S)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                thread::spawn(move || bucket.check().allowed)
            })
            .collect();
        let mine = bucket.check().allowed;
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .chain([mine])
            .filter(|&a| a)
            .count();
        assert_eq!(admitted, 2);
    });
    loom::model(|| {
        let window = SlidingWindow::per_second(1).unwrap();
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _>::builder(window)
                .clock(ManualClock::new(S))
                .hasher(FixedHasher::default())
                .build(),
        );
        let other = {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || limiter.check(&"k").allowed)
        };
        let mine = limiter.check(&"k").allowed;
        assert!(mine ^ other.join().unwrap(), "exactly one of the two");
    });
}

/// A check races a reconfiguration of a key that has used 1 unit: from 2
/// units at 1/s to 1 unit at 1 per 2 s, keep-consumed (the unit in use is
/// 2 s of the new schedule). Decided under the old quota, the check is
/// allowed (limit 2) and the key then holds 2 units = 4 s of the new
/// schedule; under the new one it is denied (limit 1) and the key holds
/// 2 s. Never a mix (an unconverted state under the new quota would hold
/// 1 s, a converted one under the old quota would be allowed with limit 2
/// and hold 3 s).
#[test]
fn loom_reconfiguration_races_a_check() {
    loom::model(|| {
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _, _>::builder(token(2))
                .shards(1)
                .hasher(FixedHasher::default())
                .clock(ManualClock::new(S))
                .build(),
        );
        assert!(limiter.check(&"k").allowed);
        let racer = {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || limiter.check(&"k"))
        };
        let slower = TokenBucket::with_rate(1, Rate::per_minute(30)).unwrap();
        limiter.reconfigure(slower, Strategy::KeepConsumed);
        let raced = racer.join().unwrap();
        let after = limiter.check_n(&"k", 0).unwrap();
        assert_eq!(after.limit, 1, "the change is in force once it returned");
        let secs = core::time::Duration::from_secs;
        if raced.allowed {
            assert_eq!(raced.limit, 2, "allowed: decided under the old quota");
            assert_eq!(after.reset_after, secs(4));
        } else {
            assert_eq!(raced.limit, 1, "denied: decided under the new quota");
            assert_eq!(raced.retry_after, Some(secs(2)));
            assert_eq!(after.reset_after, secs(2));
        }
    });
}

/// One request against two buckets of one unit each (all or nothing),
/// racing a plain check of each. Whatever the order: no bucket admits more
/// than its one unit, and each bucket's state holds exactly the units of
/// the requests it admitted (a rolled-back charge leaves nothing behind).
#[test]
fn loom_all_or_nothing_never_over_admits_or_leaves_a_charge() {
    loom::model(|| {
        let x = Arc::new(Bucket::with_clock(token(1), ManualClock::new(S)));
        let y = Arc::new(Bucket::with_clock(token(1), ManualClock::new(S)));
        let multi = {
            let (x, y) = (Arc::clone(&x), Arc::clone(&y));
            thread::spawn(move || check_all([&x.limit(1), &y.limit(1)]).allowed())
        };
        let single_y = {
            let y = Arc::clone(&y);
            thread::spawn(move || y.check().allowed)
        };
        let single_x = x.check().allowed;
        let both = multi.join().unwrap();
        let single_y = single_y.join().unwrap();
        let on_x = u64::from(both) + u64::from(single_x);
        let on_y = u64::from(both) + u64::from(single_y);
        assert!(on_x <= 1 && on_y <= 1, "x {on_x}, y {on_y}");
        assert_eq!(x.peek().remaining, 1 - on_x, "a charge left on x");
        assert_eq!(y.peek().remaining, 1 - on_y, "a charge left on y");
    });
}

/// Two all-or-nothing checks share a bucket and are both denied by a
/// bucket of their own (drained): each charges the shared bucket, then
/// rolls the charge back. Whatever the order of the charges and the
/// rollbacks (one may roll back while the other's charge is stacked on
/// its own), the shared bucket ends with nothing charged.
#[test]
fn loom_two_denied_all_or_nothing_checks_leave_no_charge() {
    loom::model(|| {
        let shared = Arc::new(Bucket::with_clock(token(2), ManualClock::new(S)));
        let drained = || {
            let b = Bucket::with_clock(token(1), ManualClock::new(S));
            assert!(b.check().allowed);
            Arc::new(b)
        };
        let (mine, theirs) = (drained(), drained());
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || check_all([&shared.limit(1), &theirs.limit(1)]).allowed())
        };
        let ours = check_all([&shared.limit(1), &mine.limit(1)]).allowed();
        assert!(!ours && !other.join().unwrap());
        assert_eq!(shared.peek().remaining, 2, "a denied request left a charge");
    });
}

/// The same through a keyed limiter: a request charged to two keys of one
/// shard (one writer mutex), racing a plain check of one of them.
#[test]
fn loom_all_or_nothing_on_keys_of_one_shard() {
    loom::model(|| {
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _, _>::builder(token(1))
                .shards(1)
                .hasher(FixedHasher::default())
                .clock(ManualClock::new(S))
                .build(),
        );
        let multi = {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || {
                check_all([&limiter.limit(&"a", 1), &limiter.limit(&"b", 1)]).allowed()
            })
        };
        let single = limiter.check(&"b").allowed;
        let both = multi.join().unwrap();
        assert!(!(both && single), "b admitted twice");
        let left = |k| limiter.check_n(&k, 0).unwrap().remaining;
        assert_eq!(left("a"), u64::from(!both));
        assert_eq!(left("b"), u64::from(!(both || single)));
    });
}

/// A refund races an admission on the same key: it gives the units back
/// only if it comes first (then the admission finds them); if the
/// admission came first, it was decided with them consumed and the refund
/// gives nothing back.
#[test]
fn loom_refund_racing_an_admission_is_exact_or_nothing() {
    loom::model(|| {
        let bucket = Arc::new(Bucket::with_clock(token(2), ManualClock::new(S)));
        let (first, receipt) = bucket.check_refundable(1).unwrap();
        assert!(first.allowed);
        let other = {
            let bucket = Arc::clone(&bucket);
            thread::spawn(move || bucket.check().allowed)
        };
        let refunded = bucket.refund(receipt.unwrap());
        assert!(other.join().unwrap(), "one unit was left either way");
        let left = bucket.peek().remaining;
        if refunded {
            assert_eq!(left, 1, "refunded before the admission: only it stays");
        } else {
            assert_eq!(left, 0, "the admission came first: both stay");
        }
    });
}

/// Two checks of a key left behind by a change of quota race to convert
/// it, under the shard's read lock: one converts, the other waits for it,
/// and the key is converted exactly once (twice would double what it has
/// used). The key has used 1 of 2 units at 1/s; the change keeps it at 2
/// units of 1 per 2 s, so the unit in use becomes 2 s, one unit is left:
/// exactly one check is admitted and the key ends 4 s ahead.
#[test]
fn loom_racing_checks_convert_a_lagging_key_once() {
    loom::model(|| {
        let limiter = Arc::new(
            KeyedLimiter::<&'static str, _, _>::builder(token(2))
                .shards(1)
                .hasher(FixedHasher::default())
                .clock(ManualClock::new(S))
                .build(),
        );
        assert!(limiter.check(&"k").allowed);
        assert!(limiter.check(&"x").allowed);
        let slower = TokenBucket::with_rate(2, Rate::per_minute(30)).unwrap();
        limiter.reconfigure(slower, Strategy::KeepConsumed);
        // Opens the change in the shard and converts x: k is left behind.
        assert_eq!(limiter.check_n(&"x", 0).unwrap().remaining, 1);
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                thread::spawn(move || limiter.check(&"k").allowed)
            })
            .collect();
        let admitted = racers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&a| a)
            .count();
        assert_eq!(admitted, 1);
        let after = limiter.check_n(&"k", 0).unwrap();
        assert_eq!(after.reset_after, core::time::Duration::from_secs(4));
        assert_eq!(limiter.keys_to_convert(), 0);
    });
}
