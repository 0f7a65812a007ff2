//! The in-process limiters: `TokenBucketMemory`, `LeakyBucketMemory`,
//! `FixedWindowMemory` and `SlidingWindowMemory`, each a
//! [`KeyedLimiter`] of `ratelimit-memory` keyed by the key's bytes.
//!
//! The calls hold the GIL: a decision is one lock-free compare-and-swap of
//! about 100 ns, and it never blocks on anything but a shard's lock, which
//! no Python code ever holds. Releasing the GIL around it was measured at
//! 1.7 M calls/s against 4.5 M holding it.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use ratelimit_core::{
    Algorithm, ConfigError, Decision as CoreDecision, FixedWindow, LeakyBucket, Rate, Shaping,
    SlidingWindow, Strategy, TokenBucket,
};
use ratelimit_memory::{DEFAULT_MAX_KEYS, KeyedLimiter, Word};

use crate::clock::PyClock;
use crate::convert;
use crate::errors;
use crate::result::{Decision, RateLimitResult, Reservation};

/// A keyed limiter of algorithm `A`, keys as bytes, on the caller's clock.
pub(crate) struct Keyed<A: Algorithm>
where
    A::State: Word,
{
    limiter: KeyedLimiter<Vec<u8>, A, PyClock>,
}

impl<A: Algorithm> Keyed<A>
where
    A::State: Word,
{
    fn new(algorithm: A, clock: PyClock, max_keys: usize) -> Self {
        Self {
            limiter: KeyedLimiter::builder(algorithm)
                .clock(clock)
                .max_keys(max_keys)
                .build(),
        }
    }

    /// `check_n` on the key's bytes; a cost above the limit raises
    /// `InsufficientCapacity`.
    #[inline]
    fn check(&self, key: &Bound<'_, PyAny>, cost: u64) -> PyResult<CoreDecision> {
        let key = convert::key(key)?;
        self.limiter
            .check_n(&*key, cost)
            .map_err(errors::insufficient)
    }
}

impl<A: Shaping + PartialEq> Keyed<A> {
    fn reserve(
        &self,
        key: &Bound<'_, PyAny>,
        cost: u64,
        max_wait: Option<&Bound<'_, PyAny>>,
        quota: Option<&A>,
    ) -> PyResult<Reservation> {
        let max_wait = match max_wait {
            None => None,
            Some(w) if w.is_none() => None,
            Some(w) => convert::seconds_ns("max_wait", w, true)?.map(Duration::from_nanos),
        };
        let key = convert::key(key)?;
        match quota {
            None => self.limiter.reserve(&*key, cost, max_wait),
            Some(q) => self.limiter.reserve_with_quota(&*key, cost, max_wait, q),
        }
        .map(|r| Reservation::from(&r))
        .map_err(errors::insufficient)
    }

    /// `check_n` under the key's own quota (the key's state converted,
    /// keep-consumed, when its quota changes).
    fn check_with_quota(
        &self,
        key: &Bound<'_, PyAny>,
        cost: u64,
        quota: &A,
    ) -> PyResult<CoreDecision> {
        let key = convert::key(key)?;
        self.limiter
            .check_with_quota(&*key, cost, quota)
            .map_err(errors::insufficient)
    }
}

/// The common keyword arguments: the clock and the key bound.
fn options(
    clock: Option<&Bound<'_, PyAny>>,
    max_keys: Option<&Bound<'_, PyAny>>,
) -> PyResult<(PyClock, usize)> {
    let clock = PyClock::from_arg(clock)?;
    let max_keys = match max_keys {
        None => DEFAULT_MAX_KEYS,
        Some(n) => usize::try_from(convert::whole("max_keys", n, 1)?).unwrap_or(usize::MAX),
    };
    Ok((clock, max_keys))
}

/// A configuration error as a `ValueError` naming the argument and its value.
fn config_error(name: &str, value: &Bound<'_, PyAny>, e: ConfigError) -> PyErr {
    let shown = value
        .repr()
        .map_or_else(|_| "?".to_owned(), |r| r.to_string());
    PyValueError::new_err(format!("invalid {name}={shown}: {e}"))
}

/// A bucket's quota from Python's `capacity` and rate arguments.
fn bucket<B>(
    capacity: &Bound<'_, PyAny>,
    rate_name: &str,
    rate: &Bound<'_, PyAny>,
    build: impl FnOnce(u64, Rate) -> Result<B, ConfigError>,
) -> PyResult<(B, u64, f64)> {
    let c = convert::capacity("capacity", capacity)?;
    let r = convert::rate(rate_name, rate)?;
    let algorithm = build(c, Rate::from_per_second_f64(r)).map_err(|e| match e {
        ConfigError::ToleranceOverflow => config_error("capacity", capacity, e),
        _ => config_error(rate_name, rate, e),
    })?;
    Ok((algorithm, c, r))
}

/// A window algorithm from Python's `limit` and `window` arguments.
pub(crate) fn window<W>(
    limit: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
    build: impl FnOnce(u64, Duration) -> Result<W, ConfigError>,
) -> PyResult<(W, u64, u64)> {
    let l = convert::capacity("limit", limit)?;
    let w = convert::seconds_ns("window", window, false)?.unwrap_or(u64::MAX);
    let algorithm = build(l, Duration::from_nanos(w)).map_err(|e| match e {
        ConfigError::LimitTooLarge | ConfigError::ZeroCapacity => config_error("limit", limit, e),
        _ => config_error("window", window, e),
    })?;
    Ok((algorithm, l, w))
}

/// `repr()` of a float argument, as Python writes it.
pub(crate) fn float_repr(py: Python<'_>, value: f64) -> String {
    pyo3::types::PyFloat::new(py, value)
        .repr()
        .map_or_else(|_| value.to_string(), |r| r.to_string())
}

/// A reconfiguration strategy from its Python name (`"keep-consumed"`,
/// `"keep-available"`, `"proportional"`, `"reset"`; `None`: the default,
/// keep-consumed).
pub(crate) fn strategy(name: Option<&str>) -> PyResult<Strategy> {
    name.map_or(Ok(Strategy::default()), |n| {
        n.parse()
            .map_err(|e: ratelimit_core::UnknownStrategy| PyValueError::new_err(e.to_string()))
    })
}

/// What a limiter shows of its quota: `repr()`'s arguments, the limit and
/// the second parameter (a rate per second, or a window in nanoseconds),
/// replaced together by `reconfigure`.
pub(crate) struct Shown {
    args: Mutex<String>,
    limit: AtomicU64,
    /// An `f64`'s bits.
    param: AtomicU64,
}

impl Shown {
    pub(crate) fn new(args: String, limit: u64, param: f64) -> Self {
        Self {
            args: Mutex::new(args),
            limit: AtomicU64::new(limit),
            param: AtomicU64::new(param.to_bits()),
        }
    }

    /// Replaces all three. Relaxed: each getter reads one value, and a
    /// reader racing a change may see either quota's, as with a check.
    pub(crate) fn set(&self, args: String, limit: u64, param: f64) {
        let mut shown = self.args.lock().unwrap_or_else(PoisonError::into_inner);
        *shown = args;
        self.limit.store(limit, Ordering::Relaxed);
        self.param.store(param.to_bits(), Ordering::Relaxed);
    }

    /// Replaces all three with `other`'s.
    pub(crate) fn set_from(&self, other: Self) {
        let args = other
            .args
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        self.set(
            args,
            other.limit.into_inner(),
            f64::from_bits(other.param.into_inner()),
        );
    }

    pub(crate) fn args(&self) -> String {
        self.args
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    pub(crate) fn param(&self) -> f64 {
        f64::from_bits(self.param.load(Ordering::Relaxed))
    }
}

/// The methods every memory limiter has; `$extra` adds its constructor
/// and what is its own (`reserve` for the buckets).
macro_rules! memory_limiter {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ty) { $($extra:tt)* }
    ) => {
        $(#[$doc])*
        #[pyclass(module = "rate_limiter", frozen)]
        pub(crate) struct $name {
            inner: Keyed<$algorithm>,
            /// The quota's arguments, for `repr()`; the limit (capacity);
            /// the rate in units per second (buckets) or the window in
            /// nanoseconds (windows), as given.
            shown: Shown,
        }

        #[pymethods]
        impl $name {
            $($extra)*

            /// The original API: `check(key)` as a `RateLimitResult`
            /// (`allowed`, `tokens_remaining`, `retry_after` in seconds).
            fn allow_request(&self, key: &Bound<'_, PyAny>) -> PyResult<RateLimitResult> {
                let d = self.inner.check(key, 1)?;
                Ok(RateLimitResult::from_decision(&d))
            }

            /// Allows or denies a request of `cost` units (default 1) for
            /// `key` now. Raises `InsufficientCapacity` (a `ValueError`)
            /// for a cost above the limit, which could never pass.
            #[pyo3(signature = (key, cost = None), text_signature = "($self, key, cost=1)")]
            fn check(
                &self,
                key: &Bound<'_, PyAny>,
                cost: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Decision> {
                let d = self.inner.check(key, convert::cost(cost)?)?;
                Ok(Decision::from(&d))
            }

            /// Units `key` could use now, consuming nothing.
            fn remaining(&self, key: &Bound<'_, PyAny>) -> PyResult<u64> {
                Ok(self.inner.check(key, 0)?.remaining)
            }

            /// Seconds until `key` is back to its initial state, consuming
            /// nothing.
            fn reset_after(&self, key: &Bound<'_, PyAny>) -> PyResult<f64> {
                let d = self.inner.check(key, 0)?;
                Ok(crate::result::ns(d.reset_after) as f64 / 1e9)
            }

            /// The number of keys held now (keys back to their initial
            /// state may be counted until their shard next sweeps).
            #[getter]
            fn keys_held(&self) -> usize {
                self.inner.limiter.len()
            }

            fn __repr__(&self) -> String {
                format!("{}({})", stringify!($name), self.shown.args())
            }
        }
    };
}

/// A bucket class: `memory_limiter!` with the constructor, `reserve`, quota
/// changes (`reconfigure`, `check_with_quota`, `reserve_with_quota`) and
/// the `capacity` and rate getters, the rate argument named `$rate`.
macro_rules! bucket_limiter {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ident, $rate:ident) {
            $(#[$reserve_doc:meta])*
            reserve;
            $(#[$rate_doc:meta])*
            rate;
        }
    ) => {
        memory_limiter! {
            $(#[$doc])*
            $name($algorithm) {
                #[new]
                #[pyo3(signature = (capacity, $rate, *, clock = None, max_keys = None))]
                fn new(
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    clock: Option<&Bound<'_, PyAny>>,
                    max_keys: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Self> {
                    let (algorithm, shown) = Self::quota(capacity, $rate)?;
                    let (clock, max_keys) = options(clock, max_keys)?;
                    Ok(Self {
                        inner: Keyed::new(algorithm, clock, max_keys),
                        shown,
                    })
                }

                /// Replaces the quota of every key while the limiter runs,
                /// now: each key's state is converted by `strategy`
                /// (`"keep-consumed"`, the default: units used stay used;
                /// `"keep-available"`: units left stay left, at most the
                /// new capacity; `"proportional"`: the same fraction stays
                /// used; `"reset"`: every key afresh), never giving a key a
                /// free burst.
                #[pyo3(signature = (capacity, $rate, *, strategy = None))]
                fn reconfigure(
                    &self,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    strategy: Option<&str>,
                ) -> PyResult<()> {
                    let strategy = self::strategy(strategy)?;
                    let (algorithm, shown) = Self::quota(capacity, $rate)?;
                    self.inner.limiter.reconfigure(algorithm, strategy);
                    self.shown.set_from(shown);
                    Ok(())
                }

                $(#[$reserve_doc])*
                #[pyo3(signature = (key, cost = None, max_wait = None), text_signature = "($self, key, cost=1, max_wait=None)")]
                fn reserve(
                    &self,
                    key: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                    max_wait: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Reservation> {
                    self.inner.reserve(key, convert::cost(cost)?, max_wait, None)
                }

                /// `check` under `key`'s own quota (a plan, an override):
                /// from this call on the key is decided under that quota,
                /// its state converted (keep-consumed) when the quota
                /// differs from the one it was on; keys never given one
                /// follow the limiter's.
                #[pyo3(signature = (key, capacity, $rate, cost = None))]
                fn check_with_quota(
                    &self,
                    key: &Bound<'_, PyAny>,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Decision> {
                    let (quota, _) = Self::quota(capacity, $rate)?;
                    let d = self.inner.check_with_quota(key, convert::cost(cost)?, &quota)?;
                    Ok(Decision::from(&d))
                }

                /// `reserve` under `key`'s own quota (see
                /// `check_with_quota`).
                #[pyo3(signature = (key, capacity, $rate, cost = None, max_wait = None))]
                fn reserve_with_quota(
                    &self,
                    key: &Bound<'_, PyAny>,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                    max_wait: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Reservation> {
                    let (quota, _) = Self::quota(capacity, $rate)?;
                    self.inner
                        .reserve(key, convert::cost(cost)?, max_wait, Some(&quota))
                }

                /// The capacity.
                #[getter]
                fn capacity(&self) -> u64 {
                    self.shown.limit()
                }

                $(#[$rate_doc])*
                #[getter]
                fn $rate(&self) -> f64 {
                    self.shown.param()
                }
            }
        }

        impl $name {
            /// The algorithm of Python's `capacity` and rate arguments, and
            /// how the limiter shows it.
            fn quota(
                capacity: &Bound<'_, PyAny>,
                rate: &Bound<'_, PyAny>,
            ) -> PyResult<($algorithm, Shown)> {
                let (algorithm, limit, per_second) =
                    bucket(capacity, stringify!($rate), rate, $algorithm::with_rate)?;
                let args = format!(
                    concat!("capacity={}, ", stringify!($rate), "={}"),
                    limit,
                    float_repr(capacity.py(), per_second)
                );
                Ok((algorithm, Shown::new(args, limit, per_second)))
            }
        }
    };
}

bucket_limiter! {
    /// A token bucket per key, in this process: bursts up to `capacity`,
    /// refilled at `refill_rate` tokens per second.
    TokenBucketMemory(TokenBucket, refill_rate) {
        /// Admits `cost` units for `key` to proceed after a wait of at most
        /// `max_wait` seconds (`None`: any wait), borrowing from the
        /// future, or rejects the request and consumes nothing.
        reserve;
        /// Tokens added per second.
        rate;
    }
}

bucket_limiter! {
    /// A leaky bucket per key, in this process: a queue of at most
    /// `capacity` units drained at `leak_rate` per second. `check` polices
    /// exactly like a token bucket; `reserve` spaces admitted requests
    /// exactly `1 / leak_rate` apart, with no burst.
    LeakyBucketMemory(LeakyBucket, leak_rate) {
        /// Queues `cost` units for `key`: admitted to proceed after the
        /// wait for the queue ahead to drain, if that wait is at most
        /// `max_wait` seconds (`None`: any) and the queue has room; or
        /// rejected, consuming nothing.
        reserve;
        /// Units drained per second.
        rate;
    }
}

/// A window class: `memory_limiter!` with the constructor, `reconfigure`
/// and the `limit` and `window` getters.
macro_rules! window_limiter {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ident) {
            $(#[$limit_doc:meta])*
            limit;
        }
    ) => {
        memory_limiter! {
            $(#[$doc])*
            $name($algorithm) {
                #[new]
                #[pyo3(signature = (limit, window, *, clock = None, max_keys = None))]
                fn new(
                    limit: &Bound<'_, PyAny>,
                    window: &Bound<'_, PyAny>,
                    clock: Option<&Bound<'_, PyAny>>,
                    max_keys: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Self> {
                    let (algorithm, shown) = Self::quota(limit, window)?;
                    let (clock, max_keys) = options(clock, max_keys)?;
                    Ok(Self {
                        inner: Keyed::new(algorithm, clock, max_keys),
                        shown,
                    })
                }

                /// Replaces the quota of every key while the limiter runs,
                /// now: under the same `window` each key keeps its counts
                /// against the new `limit`; a new `window` starts every key
                /// afresh.
                fn reconfigure(
                    &self,
                    limit: &Bound<'_, PyAny>,
                    window: &Bound<'_, PyAny>,
                ) -> PyResult<()> {
                    let (algorithm, shown) = Self::quota(limit, window)?;
                    self.inner.limiter.reconfigure(algorithm, Strategy::default());
                    self.shown.set_from(shown);
                    Ok(())
                }

                $(#[$limit_doc])*
                #[getter]
                fn limit(&self) -> u64 {
                    self.shown.limit()
                }

                /// The window, in seconds.
                #[getter]
                fn window(&self) -> f64 {
                    self.shown.param() / 1e9
                }
            }
        }

        impl $name {
            /// The algorithm of Python's `limit` and `window` arguments,
            /// and how the limiter shows it.
            fn quota(
                limit: &Bound<'_, PyAny>,
                window: &Bound<'_, PyAny>,
            ) -> PyResult<($algorithm, Shown)> {
                let (algorithm, l, w) = self::window(limit, window, $algorithm::new)?;
                let args = format!("limit={l}, window={}", float_repr(limit.py(), w as f64 / 1e9));
                Ok((algorithm, Shown::new(args, l, w as f64)))
            }
        }
    };
}

window_limiter! {
    /// At most `limit` units per `window` seconds per key, in this process;
    /// the windows are aligned to the limiter's clock (they start when the
    /// limiter is made, for the default clock) and the count resets at
    /// each window's end.
    FixedWindowMemory(FixedWindow) {
        /// The most units admitted per window.
        limit;
    }
}

window_limiter! {
    /// About `limit` units in any `window`-second span per key, in this
    /// process (the sliding window counter: the current window's count plus
    /// the previous window's, weighted by how much of it is still inside).
    /// `limit` must be below 2**32.
    SlidingWindowMemory(SlidingWindow) {
        /// The limit per window-long span.
        limit;
    }
}
