//! `acquire` as a user writes it: a smooth worker paced by a leaky bucket
//! of capacity 1 at 5 per second (the case of issue 16: it must send 5 per
//! second, not 8 in 8 ms), on tokio's paused clock and, blocking, on a
//! manual clock; and what a dropped `acquire` gives back. The async tests
//! need the `tokio` feature (`cargo test -p ratelimit-memory --all-features`).

use core::time::Duration;
use std::sync::Arc;

use ratelimit_memory::{Bucket, Clock, KeyedLimiter, LeakyBucket, ManualClock, Rate, TokenBucket};
#[cfg(feature = "tokio")]
use ratelimit_memory::{Reason, Reservation, TokioClock};

const MS: u64 = 1_000_000;

fn smooth() -> LeakyBucket {
    LeakyBucket::with_rate(1, Rate::per_second(5)).unwrap()
}

/// The worker of the issue, on tokio's paused clock: ten messages, sent
/// exactly 200 ms apart, the first at once.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_smooth_worker_is_paced_at_the_rate() {
    let start = tokio::time::Instant::now();
    let bucket = Bucket::with_clock(smooth(), TokioClock::new());
    let mut sent = Vec::new();
    for _ in 0..10 {
        let r = bucket.acquire(1).await.unwrap();
        assert!(r.is_admitted());
        sent.push(start.elapsed());
    }
    let expected: Vec<_> = (0..10).map(|i| Duration::from_millis(200 * i)).collect();
    assert_eq!(sent, expected);
}

/// The same worker per key, on a keyed limiter: each key is paced on its
/// own.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn keyed_workers_are_paced_per_key() {
    let start = tokio::time::Instant::now();
    let limiter = KeyedLimiter::<String, _, _>::builder(smooth())
        .clock(TokioClock::new())
        .build();
    let worker = |key: &'static str| {
        let limiter = &limiter;
        async move {
            let mut sent = Vec::new();
            for _ in 0..5 {
                assert!(limiter.acquire(key, 1).await.unwrap().is_admitted());
                sent.push(start.elapsed().as_millis());
            }
            sent
        }
    };
    let (a, b) = tokio::join!(worker("queue-a"), worker("queue-b"));
    assert_eq!(a, [0, 200, 400, 600, 800]);
    assert_eq!(b, [0, 200, 400, 600, 800]);
}

/// A token bucket lends from the future: a burst of its capacity at once,
/// then one every interval, each `acquire` returning the wait it slept.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn token_bucket_acquire_sleeps_the_debt() {
    let start = tokio::time::Instant::now();
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(2, Rate::per_second(10)).unwrap(),
        TokioClock::new(),
    );
    let mut waits = Vec::new();
    for _ in 0..5 {
        waits.push(bucket.acquire(1).await.unwrap().wait().unwrap().as_millis());
    }
    // Five at once: two from the bucket, then 100 ms apart.
    assert_eq!(waits, [0, 0, 100, 100, 100]);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

/// Dropped while it sleeps, an `acquire` gives its reservation back at
/// once: the next caller waits as if it had never been made.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_refunds_its_reservation() {
    let clock = TokioClock::new();
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(1, Rate::per_second(1)).unwrap(),
        clock,
    );
    assert_eq!(
        bucket.acquire(1).await.unwrap().wait(),
        Some(Duration::ZERO)
    );
    // The next one must wait 1 s; give up after 300 ms.
    let timed_out = tokio::time::timeout(Duration::from_millis(300), bucket.acquire(1)).await;
    assert!(timed_out.is_err(), "dropped during its sleep");
    // Refunded: the bucket is back to the first admission alone, whose
    // token returns at 1 s, 700 ms from now.
    let r = bucket.reserve(1, None).unwrap();
    assert_eq!(r.wait(), Some(Duration::from_millis(700)));
}

/// A reservation admitted after the dropped one was decided with its units
/// consumed: the dropped one then gives nothing back (that would let more
/// through than the quota allows), and the later one keeps its place.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_never_gives_back_a_later_admission() {
    let debt = Bucket::with_clock(
        TokenBucket::with_rate(1, Rate::per_second(1)).unwrap(),
        TokioClock::new(),
    );
    let debt = &debt;
    assert!(debt.acquire(1).await.unwrap().is_admitted()); // tat = 1 s
    let waiting = async { debt.acquire(1).await }; // tat = 2 s, sleeps 1 s
    let later = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Admitted on top of the waiting one: tat = 3 s, wait 1.99 s.
        debt.reserve(1, None).unwrap()
    };
    let (waited, later) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(300), waiting),
        later
    );
    assert!(waited.is_err(), "dropped at 300 ms");
    assert_eq!(later.wait(), Some(Duration::from_millis(1990)));
    // Not refunded: the state still holds all three (tat = 3 s); a
    // reservation now (at 300 ms) ends at 4 s and waits 4 s − τ (1 s) −
    // 300 ms = 2.7 s (1.7 s had the dropped one been given back).
    assert_eq!(
        debt.reserve(1, None).unwrap().wait(),
        Some(Duration::from_millis(2700))
    );
}

/// Dropped while it sleeps a rejection's `retry_after` (a full leaky
/// queue), an `acquire` holds nothing and gives nothing back.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn a_dropped_retry_holds_nothing() {
    let bucket = Bucket::with_clock(smooth(), TokioClock::new());
    assert_eq!(
        bucket.acquire(1).await.unwrap().wait(),
        Some(Duration::ZERO)
    );
    let pending = tokio::time::timeout(Duration::from_millis(100), bucket.acquire(1)).await;
    assert!(pending.is_err());
    // The queue still frees at 200 ms, 100 ms from now.
    let r = bucket.reserve(1, Some(Duration::ZERO)).unwrap();
    assert_eq!(r.retry_after(), Some(Duration::from_millis(100)));
}

/// `acquire_with_max_wait` is admitted only within its bound; rejected, it
/// consumes nothing and does not wait.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn acquire_with_max_wait_gives_up_at_once() {
    let start = tokio::time::Instant::now();
    let bucket = Bucket::with_clock(
        TokenBucket::with_rate(1, Rate::per_second(1)).unwrap(),
        TokioClock::new(),
    );
    assert!(bucket.acquire(1).await.unwrap().is_admitted());
    let r = bucket
        .acquire_with_max_wait(1, Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(r.retry_after(), Some(Duration::from_millis(600)));
    assert_eq!(start.elapsed(), Duration::ZERO);
    let r = bucket
        .acquire_with_max_wait(1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(r.wait(), Some(Duration::from_secs(1)));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// What can never be admitted is returned at once, never waited on.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn acquire_never_waits_for_the_impossible() {
    let start = tokio::time::Instant::now();
    let limiter = KeyedLimiter::<String, _, _>::builder(smooth())
        .clock(TokioClock::new())
        .build();
    assert!(
        limiter.acquire("k", 2).await.is_err(),
        "cost above capacity"
    );
    let long = "x".repeat(1000);
    match limiter.acquire(&*long, 1).await.unwrap() {
        Reservation::Rejected {
            retry_after: None,
            reason: Reason::KeyTooLong,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(limiter.is_empty());
}

/// The blocking form on a manual clock: `sleep` moves the clock, so the
/// worker runs at once and its send times are exact.
#[test]
fn blocking_acquire_paces_a_worker_on_a_manual_clock() {
    let clock = Arc::new(ManualClock::new(0));
    let bucket = Bucket::with_clock(smooth(), Arc::clone(&clock));
    let mut sent = Vec::new();
    for _ in 0..10 {
        assert!(bucket.acquire_blocking(1).unwrap().is_admitted());
        sent.push(clock.now_ns() / MS);
    }
    assert_eq!(sent, (0..10).map(|i| 200 * i).collect::<Vec<_>>());

    // Per key, and a token bucket whose debt is slept.
    let limiter = KeyedLimiter::<u32, _, _>::builder(
        TokenBucket::with_rate(2, Rate::per_second(10)).unwrap(),
    )
    .clock(Arc::clone(&clock))
    .build();
    let start = clock.now_ns();
    let waits: Vec<_> = (0..5)
        .map(|_| {
            limiter
                .acquire_blocking(&7, 1)
                .unwrap()
                .wait()
                .unwrap()
                .as_millis()
        })
        .collect();
    assert_eq!(waits, [0, 0, 100, 100, 100]);
    assert_eq!((clock.now_ns() - start) / MS, 300);
    assert!(limiter.acquire_blocking(&7, 3).is_err());
}

/// Without `acquire`, the wait of a rejection is not a wait to sleep: a
/// rejection has none, so a worker that slept `wait()` would send at once
/// (the bug of issue 16). `acquire` sleeps `retry_after` instead.
#[test]
fn a_rejection_has_no_wait() {
    let clock = Arc::new(ManualClock::new(0));
    let bucket = Bucket::with_clock(smooth(), Arc::clone(&clock));
    assert_eq!(
        bucket.reserve(1, None).unwrap().wait(),
        Some(Duration::ZERO)
    );
    let second = bucket.reserve(1, None).unwrap();
    assert_eq!(second.wait(), None);
    assert_eq!(second.retry_after(), Some(Duration::from_millis(200)));
}
