//! [`Recorder`]: decisions counted by outcome, per second, and the most
//! denied keys over a sliding span, in fixed memory.
//!
//! The hot path ([`Recorder::record`]) is one relaxed `fetch_add` on a
//! counter striped by thread for an allowed decision; a denial also takes
//! a short lock on the Space-Saving sketch (no allocation: the key is
//! copied into a fixed slot). Time is never read on the hot path: a
//! [`tick`](Recorder::tick_at) once a second (the thread of
//! [`Recorder::start`], or the caller's own clock) turns the running
//! totals into per-second buckets and rotates the sketch.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;
use ratelimit_core::{AnyAlgorithm, Decision, Reason};

use crate::key::{KeySnap, RecordKey};
use crate::sketch::{self, LastState, SpaceSaving};
use crate::snapshot::{Counts, QuotaInfo, Second, Snapshot, TopKey};

/// Counter stripes: threads spread over them, so that cores counting at
/// once rarely share a cache line.
const STRIPES: usize = 8;

/// How a decision counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Allowed by the quota.
    Allowed,
    /// Denied by the quota (or a full key table, or a key too long).
    Denied,
    /// Decided by the failure policy (fail open, fail closed, fallback).
    FailurePolicy,
    /// No decision: the limiter returned an error.
    Error,
}

impl Outcome {
    /// How `decision` counts.
    #[inline]
    #[must_use]
    pub fn of(decision: &Decision) -> Self {
        match decision.reason {
            Reason::FailOpen | Reason::FailClosed | Reason::Fallback => Self::FailurePolicy,
            _ if decision.allowed => Self::Allowed,
            _ => Self::Denied,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Allowed => 0,
            Self::Denied => 1,
            Self::FailurePolicy => 2,
            Self::Error => 3,
        }
    }
}

/// One stripe of the running totals, by [`Outcome::index`].
#[derive(Default)]
struct Stripe([AtomicU64; 4]);

/// The per-second history, written by ticks.
struct History {
    seconds: VecDeque<Second>,
    /// The running totals at the last tick.
    last_totals: Counts,
    /// The last tick's second.
    last_tick: Option<u64>,
}

/// The sketches of the current and the previous span.
struct Sketches {
    current: SpaceSaving,
    previous: SpaceSaving,
    /// When `current` began (Unix seconds).
    began: u64,
}

struct Inner {
    stripes: [CachePadded<Stripe>; STRIPES],
    /// Unix seconds of the last tick: the recorder's coarse clock, read
    /// (relaxed) to date a denial.
    now: AtomicU64,
    sketches: Mutex<Sketches>,
    history: Mutex<History>,
    quotas: Mutex<Vec<QuotaInfo>>,
    options: Options,
}

/// The recorder's sizes, set with [`Recorder::builder`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    top_keys: usize,
    span_secs: u64,
    history_secs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            top_keys: 64,
            span_secs: 60,
            history_secs: 300,
        }
    }
}

impl Options {
    /// How many denied keys the sketch monitors (default 64): every key
    /// denied more than `1 / n` of the span's denials is among them.
    #[must_use]
    pub fn top_keys(mut self, n: usize) -> Self {
        self.top_keys = n.clamp(1, 4096);
        self
    }

    /// The span of the top denied keys (default 60 s): the page shows the
    /// denials of the current span and the previous one, so between one
    /// and two spans.
    #[must_use]
    pub fn span(mut self, span: Duration) -> Self {
        self.span_secs = span.as_secs().max(1);
        self
    }

    /// How many seconds of per-second counts are kept (default 300).
    #[must_use]
    pub fn history(mut self, history: Duration) -> Self {
        self.history_secs = usize::try_from(history.as_secs())
            .unwrap_or(usize::MAX)
            .clamp(2, 86_400);
        self
    }

    /// A recorder with these options, ticked by the caller
    /// ([`Recorder::tick_at`]).
    #[must_use]
    pub fn build(self) -> Recorder {
        Recorder::with_options(self)
    }

    /// A recorder with these options and a thread ticking it every
    /// second (see [`Recorder::start`]).
    #[must_use]
    pub fn start(self) -> Recorder {
        let recorder = self.build();
        recorder.spawn_ticker();
        recorder
    }
}

/// Records decisions for the dashboard: cheap to clone (an `Arc`), shared
/// by every limiter and layer that feeds it and by the page that reads it.
///
/// ```
/// use ratelimit_core::{Decision, Reason};
/// use ratelimit_dashboard::Recorder;
/// use std::time::Duration;
///
/// let recorder = Recorder::new();
/// let denied = Decision {
///     allowed: false,
///     remaining: 0,
///     retry_after: Some(Duration::from_secs(1)),
///     reset_after: Duration::from_secs(10),
///     limit: 10,
///     reason: Reason::Quota,
/// };
/// recorder.record("tenant-7", &denied);
/// recorder.tick_at(1_764_000_000);
/// let snapshot = recorder.snapshot();
/// assert_eq!(snapshot.totals.denied, 1);
/// assert_eq!(snapshot.top_denied[0].key, "tenant-7");
/// ```
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Recorder")
            .field("totals", &self.totals())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// This thread's counter stripe.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The stripe of the calling thread, assigned round-robin on first use.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unix seconds now, by the system clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Recorder {
    /// A recorder with the default [`Options`], ticked by the caller: call
    /// [`tick_at`](Self::tick_at) once a second, or use
    /// [`start`](Self::start).
    #[must_use]
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    /// A recorder with the default [`Options`] and a background thread
    /// that ticks it every second by the system clock. The thread holds
    /// only a weak reference: it ends within a second of the last clone's
    /// drop.
    #[must_use]
    pub fn start() -> Self {
        Options::default().start()
    }

    /// Options to change, then [`Options::build`] or [`Options::start`].
    #[must_use]
    pub fn builder() -> Options {
        Options::default()
    }

    fn with_options(options: Options) -> Self {
        Self {
            inner: Arc::new(Inner {
                stripes: Default::default(),
                now: AtomicU64::new(0),
                sketches: Mutex::new(Sketches {
                    current: SpaceSaving::new(options.top_keys),
                    previous: SpaceSaving::new(options.top_keys),
                    began: 0,
                }),
                history: Mutex::new(History {
                    seconds: VecDeque::with_capacity(options.history_secs),
                    last_totals: Counts::default(),
                    last_tick: None,
                }),
                quotas: Mutex::new(Vec::new()),
                options,
            }),
        }
    }

    /// Starts the thread that ticks this recorder every second.
    fn spawn_ticker(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("ratelimit-dashboard-tick".to_owned())
            .spawn(move || {
                loop {
                    // Wake just after the next second boundary.
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    let to_next =
                        Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
                    std::thread::sleep(to_next + Duration::from_millis(2));
                    let Some(inner) = weak.upgrade() else { return };
                    Recorder { inner }.tick_at(unix_now());
                }
            });
        // Without a thread the recorder still counts; the page shows no
        // per-second history.
        drop(spawned);
    }

    /// Counts `outcome` once.
    #[inline]
    pub fn count(&self, outcome: Outcome) {
        // Relaxed: independent counters, read as a sum by ticks.
        self.inner.stripes[stripe()].0[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records `decision` for `key`: counted by its [`Outcome`], and a
    /// denial offered to the sketch of the most denied keys.
    #[inline]
    pub fn record<K: RecordKey + ?Sized>(&self, key: &K, decision: &Decision) {
        let outcome = Outcome::of(decision);
        self.count(outcome);
        if outcome == Outcome::Denied {
            self.offer_denied(&KeySnap::of(key), decision);
        }
    }

    /// [`record`](Self::record) for a key already snapshotted (the
    /// layer's path: the key is moved into the limiter before the decision
    /// comes back).
    #[inline]
    pub fn record_snap(&self, key: &KeySnap, decision: &Decision) {
        let outcome = Outcome::of(decision);
        self.count(outcome);
        if outcome == Outcome::Denied {
            self.offer_denied(key, decision);
        }
    }

    /// Counts a limiter error (no decision).
    #[inline]
    pub fn record_error(&self) {
        self.count(Outcome::Error);
    }

    fn offer_denied(&self, key: &KeySnap, decision: &Decision) {
        let state = LastState {
            remaining: decision.remaining,
            limit: decision.limit,
            reset_after_ms: u64::try_from(decision.reset_after.as_millis()).unwrap_or(u64::MAX),
            seen: self.inner.now.load(Ordering::Relaxed),
        };
        lock(&self.inner.sketches).current.offer(key, 1, state);
    }

    /// Registers a quota in force under `name` (a layer's policy name), for
    /// the page's quota panel; a second registration under the same name
    /// replaces the first.
    pub fn add_quota(&self, name: &str, algorithm: &AnyAlgorithm) {
        use ratelimit_core::Algorithm as _;
        let (limit, period_ms) = match (algorithm.quota(), algorithm.window()) {
            (Some(q), _) => (
                q.capacity(),
                u64::try_from(
                    q.interval()
                        .saturating_mul(u32::try_from(q.capacity()).unwrap_or(u32::MAX))
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
            ),
            (None, Some(w)) => (
                window_limit(algorithm),
                u64::try_from(w.as_millis()).unwrap_or(u64::MAX),
            ),
            (None, None) => (0, 0),
        };
        let info = QuotaInfo {
            name: name.to_owned(),
            algorithm: algorithm.kind().name().to_owned(),
            limit,
            period_ms,
        };
        let mut quotas = lock(&self.inner.quotas);
        match quotas.iter_mut().find(|q| q.name == name) {
            Some(q) => *q = info,
            None => quotas.push(info),
        }
    }

    /// The running totals since the recorder was made.
    #[must_use]
    pub fn totals(&self) -> Counts {
        let mut sums = [0u64; 4];
        for stripe in &self.inner.stripes {
            for (sum, c) in sums.iter_mut().zip(&stripe.0) {
                *sum += c.load(Ordering::Relaxed);
            }
        }
        Counts {
            allowed: sums[0],
            denied: sums[1],
            failure_policy: sums[2],
            error: sums[3],
        }
    }

    /// Closes the second ending at `unix_secs`: what was counted since the
    /// last tick becomes its bucket (seconds skipped since the last tick
    /// get empty buckets), and the sketch moves to a new span once the
    /// current one is [`Options::span`] old. A tick at or before the last
    /// one only refreshes the clock.
    pub fn tick_at(&self, unix_secs: u64) {
        let totals = self.totals();
        let options = self.inner.options;
        {
            let mut h = lock(&self.inner.history);
            if h.last_tick.is_some_and(|last| unix_secs <= last) {
                return;
            }
            if let Some(last) = h.last_tick {
                let gap = (unix_secs - last - 1).min(options.history_secs as u64);
                for t in unix_secs - gap..unix_secs {
                    push(
                        &mut h.seconds,
                        options.history_secs,
                        Second {
                            t,
                            counts: Counts::default(),
                        },
                    );
                }
            }
            let counts = totals.since(h.last_totals);
            push(
                &mut h.seconds,
                options.history_secs,
                Second {
                    t: unix_secs,
                    counts,
                },
            );
            h.last_totals = totals;
            h.last_tick = Some(unix_secs);
        }
        self.inner.now.store(unix_secs, Ordering::Relaxed);
        let mut s = lock(&self.inner.sketches);
        if s.began == 0 {
            s.began = unix_secs;
        } else if unix_secs.saturating_sub(s.began) >= options.span_secs {
            let Sketches {
                current, previous, ..
            } = &mut *s;
            core::mem::swap(current, previous);
            current.clear();
            s.began = unix_secs;
        }
    }

    /// What the page shows now: the per-second history, the totals, the
    /// most denied keys (of the current and the previous span), the quotas.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let totals = self.totals();
        let series: Vec<Second> = lock(&self.inner.history).seconds.iter().copied().collect();
        let top = {
            let s = lock(&self.inner.sketches);
            sketch::merge(&s.previous, &s.current, self.inner.options.top_keys)
        };
        Snapshot {
            source: "process".to_owned(),
            now: self.inner.now.load(Ordering::Relaxed),
            span_secs: self.inner.options.span_secs,
            series,
            totals,
            top_denied: top
                .iter()
                .map(|e| TopKey {
                    key: e.key.text(),
                    truncated: e.key.truncated(),
                    count: e.count,
                    error: e.error,
                    remaining: e.state.remaining,
                    limit: e.state.limit,
                    reset_after_ms: e.state.reset_after_ms,
                    last_seen: e.state.seen,
                })
                .collect(),
            quotas: lock(&self.inner.quotas).clone(),
            processes: 1,
            redis: None,
        }
    }
}

/// A window algorithm's limit.
fn window_limit(algorithm: &AnyAlgorithm) -> u64 {
    match algorithm {
        AnyAlgorithm::FixedWindow(w) => w.limit(),
        AnyAlgorithm::SlidingWindow(w) => w.limit(),
        _ => 0,
    }
}

fn push(seconds: &mut VecDeque<Second>, cap: usize, s: Second) {
    if seconds.len() == cap {
        seconds.pop_front();
    }
    seconds.push_back(s);
}

#[cfg(test)]
mod tests {
    use ratelimit_core::{Rate, TokenBucket};

    use super::*;

    fn decision(allowed: bool, reason: Reason) -> Decision {
        Decision {
            allowed,
            remaining: if allowed { 3 } else { 0 },
            retry_after: (!allowed).then(|| Duration::from_millis(500)),
            reset_after: Duration::from_millis(2500),
            limit: 5,
            reason,
        }
    }

    #[test]
    fn outcomes_are_counted_per_second() {
        let r = Recorder::new();
        r.tick_at(100);
        r.record("a", &decision(true, Reason::Quota));
        r.record("a", &decision(true, Reason::Quota));
        r.record("b", &decision(false, Reason::Quota));
        r.record("c", &decision(true, Reason::FailOpen));
        r.record("c", &decision(false, Reason::FailClosed));
        r.record_error();
        r.tick_at(101);
        r.record("b", &decision(false, Reason::Quota));
        r.tick_at(104);
        let s = r.snapshot();
        let at = |t: u64| s.series.iter().find(|x| x.t == t).map(|x| x.counts);
        assert_eq!(
            at(101),
            Some(Counts {
                allowed: 2,
                denied: 1,
                failure_policy: 2,
                error: 1
            })
        );
        assert_eq!(at(102), Some(Counts::default()));
        assert_eq!(at(103), Some(Counts::default()));
        assert_eq!(
            at(104),
            Some(Counts {
                denied: 1,
                ..Counts::default()
            })
        );
        assert_eq!(s.series.len(), 5);
        assert_eq!(s.totals.denied, 2);
        assert_eq!(s.now, 104);
        // Only quota denials rank: the fail-closed key is not there.
        assert_eq!(s.top_denied.len(), 1);
        let b = &s.top_denied[0];
        assert_eq!((b.key.as_str(), b.count, b.error), ("b", 2, 0));
        assert_eq!(
            (b.remaining, b.limit, b.reset_after_ms, b.last_seen),
            (0, 5, 2500, 101)
        );
    }

    #[test]
    fn the_history_is_bounded() {
        let r = Recorder::builder().history(Duration::from_secs(10)).build();
        for t in 1..=100 {
            r.tick_at(t);
        }
        r.tick_at(10_000);
        let s = r.snapshot();
        assert_eq!(s.series.len(), 10);
        assert_eq!(s.series.last().map(|x| x.t), Some(10_000));
    }

    #[test]
    fn denials_leave_the_top_after_two_spans() {
        let r = Recorder::builder().span(Duration::from_secs(10)).build();
        r.tick_at(1000);
        r.record("old", &decision(false, Reason::Quota));
        r.tick_at(1010);
        assert_eq!(
            r.snapshot().top_denied.len(),
            1,
            "kept from the previous span"
        );
        r.record("new", &decision(false, Reason::Quota));
        r.tick_at(1020);
        let keys: Vec<_> = r.snapshot().top_denied.into_iter().map(|k| k.key).collect();
        assert_eq!(keys, ["new"]);
    }

    #[test]
    fn quotas_are_listed_by_name() {
        let r = Recorder::new();
        let bucket =
            AnyAlgorithm::TokenBucket(TokenBucket::with_rate(10, Rate::per_second(2)).unwrap());
        r.add_quota("api", &bucket);
        r.add_quota("api", &bucket);
        let q = r.snapshot().quotas;
        assert_eq!(q.len(), 1);
        assert_eq!(
            q[0],
            QuotaInfo {
                name: "api".into(),
                algorithm: "token-bucket".into(),
                limit: 10,
                period_ms: 5000
            }
        );
    }

    #[test]
    fn threads_add_up() {
        let r = Recorder::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        r.record("k", &decision(true, Reason::Quota));
                    }
                });
            }
        });
        assert_eq!(r.totals().allowed, 4000);
    }
}
