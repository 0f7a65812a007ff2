//! Receipts and refunds: the cost of an admitted request given back once,
//! exactly or not at all, never more than was taken and never what a later
//! admission was decided with; against a model that replays only the
//! requests that were not refunded.

use core::time::Duration;
use std::sync::Arc;

use ratelimit_memory::{
    Algorithm, AnyAlgorithm, Bucket, Clock, FixedWindow, KeyedLimiter, LeakyBucket, ManualClock,
    Rate, SlidingWindow, Strategy, TokenBucket,
};

const S: u64 = 1_000_000_000;

#[test]
fn a_bucket_gives_back_exactly_once() {
    let clock = Arc::new(ManualClock::new(S));
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(5, Rate::per_second(1)).unwrap(),
        Arc::clone(&clock),
    );
    let (d, receipt) = bucket.check_refundable(3).unwrap();
    assert_eq!(d.remaining, 2);
    let receipt = receipt.expect("admitted at a cost above zero");
    assert_eq!(receipt.cost(), 3);
    assert!(bucket.refund(receipt));
    assert_eq!(bucket.peek().remaining, 5);
    assert_eq!(bucket.peek().reset_after, Duration::ZERO);
    // A denial and a cost of zero store nothing, so they give no receipt.
    assert!(bucket.check_refundable(0).unwrap().1.is_none());
    assert!(bucket.check_refundable(5).unwrap().1.is_some());
    assert!(bucket.check_refundable(1).unwrap().1.is_none());
    // A receipt of another bucket gives nothing back.
    let other = Bucket::with_clock(
        TokenBucket::with_rate(5, Rate::per_second(1)).unwrap(),
        Arc::clone(&clock),
    );
    let (_, foreign) = other.check_refundable(5).unwrap();
    assert!(!bucket.refund(foreign.unwrap()));
    assert_eq!(bucket.peek().remaining, 0);
}

#[test]
fn part_of_an_admission_already_past_is_not_given_back() {
    let clock = Arc::new(ManualClock::new(S));
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(4, Rate::per_second(1)).unwrap(),
        Arc::clone(&clock),
    );
    let (_, receipt) = bucket.check_refundable(4).unwrap();
    // 2.5 s later, 2 of the 4 tokens came back by themselves.
    clock.advance(Duration::from_millis(2500));
    assert_eq!(bucket.peek().remaining, 2);
    assert!(bucket.refund(receipt.unwrap()));
    // Full again: never fuller than a fresh bucket.
    assert_eq!(bucket.peek().remaining, 4);
    assert_eq!(bucket.peek().reset_after, Duration::ZERO);
    // Once the admission is entirely in the past there is nothing to give.
    let (_, receipt) = bucket.check_refundable(1).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!bucket.refund(receipt.unwrap()));
}

#[test]
fn a_later_admission_keeps_a_bucket_refund_from_happening() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<String, _, _>::builder(
        LeakyBucket::with_rate(3, Rate::per_second(1)).unwrap(),
    )
    .clock(Arc::clone(&clock))
    .build();
    let (_, first) = limiter.check_refundable("k", 1, None).unwrap();
    assert!(limiter.check("k").allowed);
    // "k" now holds both: the first cannot be told apart from the second.
    assert!(!limiter.refund("k", first.unwrap()));
    assert_eq!(limiter.check_n("k", 0).unwrap().remaining, 1);
    // The last one can: last in, first refunded.
    let (_, last) = limiter.check_refundable("k", 1, None).unwrap();
    assert!(limiter.refund("k", last.unwrap()));
    assert_eq!(limiter.check_n("k", 0).unwrap().remaining, 1);
}

#[test]
fn a_receipt_is_for_its_own_key_and_quota() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<String, _, _>::builder(
        TokenBucket::with_rate(2, Rate::per_second(1)).unwrap(),
    )
    .clock(Arc::clone(&clock))
    .build();
    let (_, a) = limiter.check_refundable("a", 1, None).unwrap();
    let (_, b) = limiter.check_refundable("b", 1, None).unwrap();
    // Same time, same cost: "a" and "b" hold the same state; the receipt of
    // one still gives nothing back to the other.
    assert!(!limiter.refund("b", a.unwrap()));
    assert_eq!(limiter.check_n("b", 0).unwrap().remaining, 1);
    // Another quota since: the admission was decided under the old one.
    limiter.reconfigure(
        TokenBucket::with_rate(4, Rate::per_second(2)).unwrap(),
        Strategy::KeepConsumed,
    );
    assert!(!limiter.refund("b", b.unwrap()));
    let (_, c) = limiter.check_refundable("c", 1, None).unwrap();
    let pro = TokenBucket::with_rate(10, Rate::per_second(10)).unwrap();
    assert!(limiter.check_with_quota("c", 0, &pro).unwrap().allowed);
    assert!(
        !limiter.refund("c", c.unwrap()),
        "c moved to a quota of its own"
    );
    let (_, c) = limiter.check_refundable("c", 1, Some(&pro)).unwrap();
    assert!(limiter.refund("c", c.unwrap()));
    assert_eq!(limiter.check_with_quota("c", 0, &pro).unwrap().remaining, 9);
}

#[test]
fn a_window_gives_back_whatever_was_admitted_since() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<String, _, _>::builder(FixedWindow::per_minute(10).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    let (_, first) = limiter.check_refundable("k", 4, None).unwrap();
    assert!(limiter.check_n("k", 5).unwrap().allowed);
    // Counts add up: the first 4 come off the count, the 5 stay.
    assert!(limiter.refund("k", first.unwrap()));
    assert_eq!(limiter.check_n("k", 0).unwrap().remaining, 5);
    // In the next window the admission no longer counts: nothing to give.
    let (_, r) = limiter.check_refundable("k", 1, None).unwrap();
    clock.advance(Duration::from_secs(60));
    assert!(!limiter.refund("k", r.unwrap()));
    assert_eq!(limiter.check_n("k", 0).unwrap().remaining, 10);
}

/// A sliding window's admission weighs on the next window too: refunded
/// there, it comes off the previous window's count.
#[test]
fn a_sliding_window_refund_reaches_into_the_next_window() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u32, _, _>::builder(SlidingWindow::per_second(10).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    let (_, r) = limiter.check_refundable(&1, 10, None).unwrap();
    clock.advance(Duration::from_millis(1500)); // window 2, halfway
    assert!(limiter.check_n(&1, 1).unwrap().allowed); // 10 × 1/2 + 1 used
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 4);
    assert!(limiter.refund(&1, r.unwrap()));
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 9);
}

/// A tiny xorshift: the traffic of the model test, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random checks with receipts and random refunds on a few keys, with
/// time moving: every decision equals the model's, where the model is the
/// algorithm replaying only the admissions that were not refunded (so a
/// refund is exact: as if the request had never been made), and a refund
/// succeeds only when the model agrees that it changes something.
fn refunds_match_the_model(algorithm: AnyAlgorithm, step_ns: u64, seed: u64) {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u8, _, _>::builder(algorithm)
        .clock(Arc::clone(&clock))
        .max_keys(3)
        .shards(1)
        .build();
    let mut rng = Rng(seed);
    // Per key: the admissions (time, cost, refunded) and receipts to use.
    let mut admitted: Vec<Vec<(u64, u64, bool)>> = vec![Vec::new(); 3];
    let mut receipts = Vec::new();
    let model = |log: &[(u64, u64, bool)]| {
        let mut state = 0u128;
        for &(at, cost, refunded) in log {
            if !refunded {
                let step = algorithm.check(state, at, cost).unwrap();
                assert!(step.decision.allowed, "the model over-admits: {log:?}");
                state = step.next.unwrap_or(state);
            }
        }
        state
    };
    let (mut refunds, mut refused) = (0, 0);
    for i in 0..1500 {
        clock.advance(Duration::from_nanos(rng.next() % step_ns));
        let now = clock.now_ns();
        let key = (rng.next() % 3) as u8;
        if rng.next() % 3 == 0 && !receipts.is_empty() {
            // The latest receipt half of the time (a failed call refunded
            // at once), otherwise any.
            let pick = if rng.next() % 2 == 0 {
                receipts.len() - 1
            } else {
                rng.next() as usize % receipts.len()
            };
            let (k, index, receipt): (u8, usize, _) = receipts.swap_remove(pick);
            let before = model(&admitted[k as usize]);
            let mut without = admitted[k as usize].clone();
            without[index].2 = true;
            let changes = algorithm.inspect(model(&without), now) != algorithm.inspect(before, now);
            let refunded = limiter.refund(&k, receipt);
            if refunded {
                refunds += 1;
                admitted[k as usize][index].2 = true;
            } else {
                refused += 1;
            }
            // A bucket's refund that succeeds always shows (in
            // `reset_after` at least); one that would show may still be
            // refused (later admissions). A window's may not show at once
            // (the previous window's weight is rounded).
            if algorithm.kind().is_bucket() {
                assert!(
                    !refunded || changes,
                    "step {i}: an empty refund claimed success"
                );
            }
            continue;
        }
        let cost = rng.next() % 3;
        let expected = algorithm
            .check(model(&admitted[key as usize]), now, cost)
            .unwrap();
        let (d, receipt) = limiter.check_refundable(&key, cost, None).unwrap();
        assert_eq!(d, expected.decision, "step {i}: key {key} at {now}");
        if let Some(receipt) = receipt {
            admitted[key as usize].push((now, cost, false));
            receipts.push((key, admitted[key as usize].len() - 1, receipt));
        }
    }
    assert!(
        refunds > 50 && refused > 10,
        "{refunds} refunds, {refused} refused"
    );
}

#[test]
fn bucket_refunds_are_exact() {
    let token = AnyAlgorithm::TokenBucket(TokenBucket::with_rate(4, Rate::per_second(10)).unwrap());
    let leaky = AnyAlgorithm::LeakyBucket(LeakyBucket::with_rate(4, Rate::per_second(10)).unwrap());
    for seed in 1..=3 {
        refunds_match_the_model(token, 60_000_000, seed);
        refunds_match_the_model(leaky, 60_000_000, seed);
    }
}

#[test]
fn window_refunds_are_exact() {
    let fixed = AnyAlgorithm::FixedWindow(FixedWindow::per_second(6).unwrap());
    let sliding = AnyAlgorithm::SlidingWindow(SlidingWindow::per_second(6).unwrap());
    for seed in 1..=3 {
        refunds_match_the_model(fixed, 150_000_000, seed);
        refunds_match_the_model(sliding, 150_000_000, seed);
    }
}
