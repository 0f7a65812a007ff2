//! Changing a live limiter's quota: converted lazily, each key at its next
//! access, every decision equals that of a model that converts every key
//! at the moment of each change (keys untouched across many changes, all
//! four strategies, windows, sweeps and growing tables in between); a
//! check racing a change is decided entirely under one quota; the history
//! of changes stays bounded.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use ratelimit_core::Step;
use ratelimit_memory::{
    Algorithm, AnyAlgorithm, AnyBucket, Clock, FixedWindow, InsufficientCapacity, KeyedLimiter,
    LeakyBucket, ManualClock, Rate, Reason, Reservation, Shaping, SlidingWindow, Strategy,
    TokenBucket, Word,
};

const S: u64 = 1_000_000_000;

/// A tiny xorshift: the same traffic on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the model test runs on: the buckets (which also reserve) as an
/// [`AnyBucket`], the windows as an [`AnyAlgorithm`].
trait Subject: Algorithm<State: Word> + PartialEq {
    /// Another quota of the same kind, at random.
    fn random(self, rng: &mut Rng) -> Self;

    /// `reserve`, where the algorithm shapes.
    fn reserve_step(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Option<Result<Step<Reservation, Self::State>, InsufficientCapacity>>;

    /// `reserve` on the limiter, where the algorithm shapes.
    fn reserve_on(
        limiter: &KeyedLimiter<u32, Self, Arc<ManualClock>>,
        key: u32,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Option<Result<Reservation, InsufficientCapacity>>;
}

impl Subject for AnyBucket {
    fn random(self, rng: &mut Rng) -> Self {
        let capacity = 1 + rng.below(8);
        let rate = Rate::per_second(1 + rng.below(20));
        AnyAlgorithm::with_rate(self.kind(), capacity, rate)
            .unwrap()
            .as_bucket()
            .unwrap()
    }

    fn reserve_step(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Option<Result<Step<Reservation>, InsufficientCapacity>> {
        Some(self.reserve(tat, now, cost, max_wait_ns))
    }

    fn reserve_on(
        limiter: &KeyedLimiter<u32, Self, Arc<ManualClock>>,
        key: u32,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Option<Result<Reservation, InsufficientCapacity>> {
        Some(limiter.reserve(&key, cost, max_wait))
    }
}

impl Subject for AnyAlgorithm {
    fn random(self, rng: &mut Rng) -> Self {
        let capacity = 1 + rng.below(8);
        // Mostly the same window (the counts carry over), sometimes
        // another (every key starts afresh).
        let window = if rng.below(4) == 0 {
            Duration::from_millis(500 + 500 * rng.below(3))
        } else {
            self.window().unwrap()
        };
        AnyAlgorithm::with_window(self.kind(), capacity, window).unwrap()
    }

    fn reserve_step(
        &self,
        _: u128,
        _: u64,
        _: u64,
        _: Option<u64>,
    ) -> Option<Result<Step<Reservation, u128>, InsufficientCapacity>> {
        None
    }

    fn reserve_on(
        _: &KeyedLimiter<u32, Self, Arc<ManualClock>>,
        _: u32,
        _: u64,
        _: Option<Duration>,
    ) -> Option<Result<Reservation, InsufficientCapacity>> {
        None
    }
}

/// The model: every key's state, converted eagerly at every change.
struct Eager<A: Algorithm> {
    algorithm: A,
    states: HashMap<u32, A::State>,
}

impl<A: Algorithm> Eager<A> {
    fn reconfigure(&mut self, to: A, strategy: Strategy, at: u64) {
        for state in self.states.values_mut() {
            *state = self.algorithm.convert(*state, at, &to, strategy);
        }
        self.algorithm = to;
    }
}

struct Run {
    changes: usize,
    decisions: usize,
}

/// Random checks and reservations over `keys` keys (and rarely touched
/// ones), with a change of quota every so often; every answer of the
/// limiter (lazy) must equal the eager model's.
fn lazy_equals_eager<A: Subject>(
    initial: A,
    keys: u32,
    max_keys: usize,
    shards: usize,
    change_every: u64,
    steps: usize,
    seed: u64,
) -> Run {
    let clock = Arc::new(ManualClock::new(S));
    let limiter = KeyedLimiter::<u32, _, _>::builder(initial)
        .clock(Arc::clone(&clock))
        .max_keys(max_keys)
        .shards(shards)
        .build();
    let mut model = Eager {
        algorithm: initial,
        states: HashMap::new(),
    };
    let mut rng = Rng(seed);
    let mut run = Run {
        changes: 0,
        decisions: 0,
    };
    for i in 0..steps {
        clock.advance(Duration::from_nanos(rng.below(40_000_000)));
        let now = clock.now_ns();
        if rng.below(change_every) == 0 {
            let to = model.algorithm.random(&mut rng);
            let strategy = Strategy::ALL[rng.below(4) as usize];
            limiter.reconfigure(to, strategy);
            model.reconfigure(to, strategy, now);
            run.changes += 1;
            continue;
        }
        let key = if rng.below(10) == 0 {
            keys + rng.below(u64::from(keys)) as u32
        } else {
            rng.below(u64::from(keys)) as u32
        };
        let cost = rng.below(4);
        let state = model.states.get(&key).copied().unwrap_or_default();
        let max_wait = [None, Some(0), Some(300_000_000)][rng.below(3) as usize];
        let reserve = rng.below(3) == 0;
        let next = match model.algorithm.reserve_step(state, now, cost, max_wait) {
            Some(expected) if reserve => {
                let got =
                    A::reserve_on(&limiter, key, cost, max_wait.map(Duration::from_nanos)).unwrap();
                match (expected, got) {
                    (Ok(_), Ok(r)) if r.reason() == Reason::KeyTableFull => None,
                    (Ok(step), Ok(r)) => {
                        assert_eq!(r, step.decision, "step {i}: reserve {key} at {now}");
                        step.next
                    }
                    (Err(_), Err(_)) => None,
                    (e, g) => panic!("step {i}: expected {e:?}, got {g:?}"),
                }
            }
            _ => match (
                model.algorithm.check(state, now, cost),
                limiter.check_n(&key, cost),
            ) {
                (Ok(_), Ok(d)) if d.reason == Reason::KeyTableFull => {
                    // Refused a slot: only a key in its initial state, and
                    // only when the (single) shard holds that many live keys.
                    assert!(
                        model.algorithm.expires_at(state) <= now,
                        "step {i}: live key {key} refused"
                    );
                    let live = model
                        .states
                        .values()
                        .filter(|&&s| model.algorithm.expires_at(s) > now)
                        .count();
                    assert!(
                        shards == 1 && live >= max_keys,
                        "step {i}: {live} live keys"
                    );
                    None
                }
                (Ok(step), Ok(d)) => {
                    assert_eq!(d, step.decision, "step {i}: check {key} at {now}");
                    step.next
                }
                (Err(_), Err(_)) => None,
                (e, g) => panic!("step {i}: expected {e:?}, got {g:?}"),
            },
        };
        if let Some(next) = next {
            model.states.insert(key, next);
        }
        run.decisions += 1;
    }
    // Every key, touched or not, ends where the model has it.
    let now = clock.now_ns();
    for (key, &state) in &model.states {
        assert_eq!(
            limiter.check_n(key, 0).unwrap(),
            model.algorithm.inspect(state, now),
            "key {key} at the end"
        );
    }
    run
}

fn token() -> AnyBucket {
    AnyBucket::TokenBucket(TokenBucket::with_rate(4, Rate::per_second(10)).unwrap())
}

fn leaky() -> AnyBucket {
    AnyBucket::LeakyBucket(LeakyBucket::with_rate(4, Rate::per_second(10)).unwrap())
}

#[test]
fn lazy_conversion_equals_converting_at_each_change() {
    for (seed, initial) in [(1, token()), (2, leaky()), (3, token()), (4, leaky())] {
        let run = lazy_equals_eager(initial, 40, 10_000, 4, 25, 6_000, seed);
        assert!(run.changes > 150 && run.decisions > 3_000, "seed {seed}");
    }
}

/// A bound so tight that shards sweep (converting every lagging key
/// first) on most insertions, and tables that grow while keys lag.
#[test]
fn lazy_conversion_survives_sweeps_and_growth() {
    for (seed, initial) in [(5, token()), (6, leaky())] {
        lazy_equals_eager(initial, 12, 12, 1, 15, 6_000, seed);
        lazy_equals_eager(initial, 300, 100_000, 2, 40, 6_000, seed);
    }
}

/// Changes in a quick run, keys left untouched across hundreds of them:
/// past the number of changes a shard keeps for lagging keys (254), it
/// converts them all at once, to the same states.
#[test]
fn many_changes_with_keys_left_behind() {
    let run = lazy_equals_eager(token(), 20, 10_000, 1, 2, 5_000, 7);
    assert!(run.changes > 2_000, "{}", run.changes);
}

#[test]
fn windows_keep_their_counts_or_start_afresh() {
    let fixed = AnyAlgorithm::FixedWindow(FixedWindow::new(5, Duration::from_secs(1)).unwrap());
    let sliding =
        AnyAlgorithm::SlidingWindow(SlidingWindow::new(5, Duration::from_secs(1)).unwrap());
    for (seed, initial) in [(8, fixed), (9, sliding)] {
        let run = lazy_equals_eager(initial, 30, 10_000, 2, 20, 6_000, seed);
        assert!(run.changes > 200, "seed {seed}");
    }
    // By hand: only L changes, the count stands; W changes, it is gone.
    let clock = Arc::new(ManualClock::new(10 * S));
    let limiter = KeyedLimiter::<u8, _, _>::builder(FixedWindow::per_minute(10).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    assert!(limiter.check_n(&1, 8).unwrap().allowed);
    limiter.reconfigure(FixedWindow::per_minute(20).unwrap(), Strategy::KeepConsumed);
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 12);
    limiter.reconfigure(FixedWindow::per_hour(20).unwrap(), Strategy::KeepConsumed);
    assert_eq!(limiter.check_n(&1, 0).unwrap().remaining, 20);
}

/// The four strategies on one key, by hand (docs/semantics.md's example):
/// 4 of 10 used at 10/s, changed to 20 at 5/s.
#[test]
fn each_strategy_by_hand() {
    for (strategy, remaining) in [
        (Strategy::KeepConsumed, 16),
        (Strategy::KeepAvailable, 6),
        (Strategy::Proportional, 12),
        (Strategy::Reset, 20),
    ] {
        let clock = Arc::new(ManualClock::new(S));
        let limiter = KeyedLimiter::<&str, _, _>::builder(
            TokenBucket::with_rate(10, Rate::per_second(10)).unwrap(),
        )
        .clock(Arc::clone(&clock))
        .build();
        assert!(limiter.check_n(&"k", 4).unwrap().allowed);
        limiter.reconfigure(
            TokenBucket::with_rate(20, Rate::per_second(5)).unwrap(),
            strategy,
        );
        // Converted at the change, read later: 100 ms later, half a unit
        // more is back at 5/s (floored in `remaining`).
        clock.advance(Duration::from_millis(100));
        let d = limiter.check_n(&"k", 0).unwrap();
        assert_eq!((d.limit, d.remaining), (20, remaining), "{strategy}");
    }
}

/// Untouched across three changes: the key's state is converted through
/// each, at each change's own time, when it is next read.
#[test]
fn a_key_untouched_across_changes_composes_them() {
    let clock = Arc::new(ManualClock::new(S));
    let q = |c, r| TokenBucket::with_rate(c, Rate::per_second(r)).unwrap();
    let limiter = KeyedLimiter::<&str, _, _>::builder(q(10, 10))
        .clock(Arc::clone(&clock))
        .build();
    assert!(limiter.check_n(&"k", 10).unwrap().allowed); // tat = 2 s
    let mut tat = 2 * S;
    let mut from = q(10, 10);
    for (to, strategy) in [
        (q(10, 5), Strategy::KeepConsumed),
        (q(4, 5), Strategy::KeepAvailable),
        (q(8, 20), Strategy::Proportional),
    ] {
        clock.advance(Duration::from_millis(100));
        limiter.reconfigure(to, strategy);
        tat = from.convert(tat, clock.now_ns(), &to, strategy);
        from = to;
    }
    clock.advance(Duration::from_millis(100));
    let now = clock.now_ns();
    assert_eq!(limiter.check_n(&"k", 0).unwrap(), from.inspect(tat, now));
    assert_eq!(limiter.keys_to_convert(), 0, "converted on that read");
}

/// `reconfigure` touches no key: it returns with every key still to
/// convert, and a shard nobody reads keeps the history from growing.
#[test]
fn reconfiguring_touches_no_key_and_keeps_little_history() {
    let clock = Arc::new(ManualClock::new(S));
    let limiter =
        KeyedLimiter::<u32, _, _>::builder(TokenBucket::with_rate(5, Rate::per_hour(5)).unwrap())
            .clock(Arc::clone(&clock))
            .build();
    for key in 0..5_000 {
        assert!(limiter.check(&key).allowed);
    }
    limiter.reconfigure(
        TokenBucket::with_rate(10, Rate::per_hour(10)).unwrap(),
        Strategy::KeepConsumed,
    );
    assert_eq!(
        limiter.keys_to_convert(),
        0,
        "no shard has seen the change yet"
    );
    assert_eq!(limiter.check_n(&0, 0).unwrap().remaining, 9);
    // One shard opened the change: all its keys wait for their next access.
    let waiting = limiter.keys_to_convert();
    assert!(waiting > 10 && waiting < 5_000, "{waiting}");
    // Many more changes than the history keeps, most shards never read.
    for i in 0..1_500u64 {
        let rate = Rate::per_hour(10 + i % 7);
        limiter.reconfigure(
            TokenBucket::with_rate(10, rate).unwrap(),
            Strategy::KeepConsumed,
        );
    }
    assert!(limiter.changes_kept() <= 64, "{}", limiter.changes_kept());
    // Still exact for every key: 1 of 10 used.
    for key in (0..5_000).step_by(37) {
        assert_eq!(limiter.check_n(&key, 0).unwrap().remaining, 9, "key {key}");
    }
}

/// Real threads check while another thread changes the quota from 10 to
/// 5 (keep-consumed, same rate, time frozen). Each decision reports the
/// quota it was made under; per key, the admissions are exactly those of
/// some order of the decisions with the change among them: `k` under the
/// old quota, then up to `5 − k` more under the new one.
#[test]
fn checks_racing_a_change_see_one_quota_each() {
    const THREADS: usize = 4;
    const KEYS: u32 = 64;
    for round in 0..50 {
        let clock = Arc::new(ManualClock::new(S));
        let limiter = Arc::new(
            KeyedLimiter::<u32, _, _>::builder(
                TokenBucket::with_rate(10, Rate::per_hour(10)).unwrap(),
            )
            .clock(Arc::clone(&clock))
            .build(),
        );
        let start = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (limiter, start) = (Arc::clone(&limiter), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let mut seen = Vec::new();
                    for i in 0..4 * KEYS {
                        let d = limiter.check(&(i % KEYS));
                        seen.push((i % KEYS, d.allowed, d.limit));
                    }
                    seen
                })
            })
            .collect();
        start.wait();
        limiter.reconfigure(
            TokenBucket::with_rate(5, Rate::per_hour(5)).unwrap(),
            Strategy::KeepConsumed,
        );
        let mut per_key = vec![(0u64, 0u64); KEYS as usize]; // (old, new) admissions
        for worker in workers {
            let mut last_limit = HashMap::new();
            for (key, allowed, limit) in worker.join().unwrap() {
                assert!(limit == 10 || limit == 5);
                // Once a thread saw the new quota for a key, never the old.
                let prev = last_limit.insert(key, limit);
                assert!(
                    !(prev == Some(5) && limit == 10),
                    "round {round}: key {key} went back"
                );
                if allowed {
                    let slot = &mut per_key[key as usize];
                    if limit == 10 {
                        slot.0 += 1
                    } else {
                        slot.1 += 1
                    }
                }
            }
        }
        for (key, &(old, new)) in per_key.iter().enumerate() {
            assert!(old <= 10, "round {round}: key {key}");
            // 16 requests per key: after the change the key always ends
            // full under the new quota (5), or over it from the old one.
            assert_eq!(
                new,
                5u64.saturating_sub(old),
                "round {round}: key {key}: old {old}"
            );
            let left = limiter.check_n(&(key as u32), 0).unwrap().remaining;
            assert_eq!(
                left,
                5u64.saturating_sub(old + new),
                "round {round}: key {key}"
            );
        }
    }
}
