//! The Redis limiters: `TokenBucketRedis`, `LeakyBucketRedis`,
//! `FixedWindowRedis` and `SlidingWindowRedis`, each a
//! [`RedisLimiter`] of `ratelimit-redis` on a pool to the server of the
//! caller's redis-py client (see [`crate::connection`]).
//!
//! Every call releases the GIL for its round trip: other Python threads
//! run while one waits on Redis. The state in Redis is exactly a Rust
//! service's (same scripts, same `<prefix>|<key>` names, same encoding of
//! `str` and `bytes` keys), so Python and Rust processes on one prefix
//! share one limit.

use std::sync::{Arc, Mutex, PoisonError};

use core::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use ratelimit_core::{
    Algorithm, Decision as CoreDecision, FixedWindow, LeakyBucket, Quota, Rate, Shaping,
    SlidingWindow, TokenBucket,
};
use ratelimit_redis::{CircuitBreaker, FailurePolicy, RedisLimiter, RedisPool, TimeSource};

use crate::clock::PyClock;
use crate::connection::{self, Options, Target};
use crate::convert;
use crate::errors;
use crate::memory::Shown;
use crate::result::{Decision, RateLimitResult, Reservation};

/// What a limiter is rebuilt from after a fork.
struct Config<A> {
    algorithm: A,
    prefix: String,
    policy: FailurePolicy,
    breaker: Option<CircuitBreaker>,
    max_key_len: Option<usize>,
    secret: Option<Vec<u8>>,
    /// Client time from this clock, or the server's `TIME` when `None`.
    clock: Option<Arc<ratelimit_core::ManualClock>>,
    target: Target,
}

/// A Redis limiter of algorithm `A`, remade in a forked child.
pub(crate) struct Remote<A: Algorithm> {
    config: Config<A>,
    /// The fork generation the limiter was made in, and the limiter. Locked
    /// only with the GIL held and never across a wait.
    current: Mutex<(u64, RedisLimiter<A>)>,
    /// Set once this limiter changed its quota: how a limiter made again
    /// after a fork reads the prefix's quota record first.
    refresh: std::sync::OnceLock<fn(&RedisLimiter<A>)>,
}

impl<A: Algorithm> Config<A> {
    fn build(&self, pool: RedisPool) -> PyResult<RedisLimiter<A>> {
        let mut b = RedisLimiter::builder(self.algorithm)
            .prefix(self.prefix.clone())
            .failure_policy(self.policy)
            .circuit_breaker(self.breaker);
        if let Some(max) = self.max_key_len {
            b = b.max_key_len(max);
        }
        if let Some(secret) = &self.secret {
            b = b.hash_keys(secret.clone());
        }
        if self.clock.is_some() {
            b = b.time_source(TimeSource::client());
        }
        b.build(pool).map_err(errors::redis)
    }
}

impl<A: Algorithm> Remote<A> {
    fn new(py: Python<'_>, config: Config<A>) -> PyResult<Self> {
        let pool = connection::pool(py, &config.target)?;
        let limiter = config.build(pool)?;
        Ok(Self {
            current: Mutex::new((connection::generation(), limiter)),
            config,
            refresh: std::sync::OnceLock::new(),
        })
    }

    /// The limiter of this process (made again after a fork).
    #[inline]
    fn limiter(&self, py: Python<'_>) -> PyResult<RedisLimiter<A>> {
        let now = connection::generation();
        {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            if current.0 == now {
                return Ok(current.1.clone());
            }
        }
        let fresh = self
            .config
            .build(connection::pool(py, &self.config.target)?)?;
        if let Some(refresh) = self.refresh.get() {
            // The parent's changes are in the quota record; a Redis that
            // cannot be read now is read when the child first meets a key
            // converted to a newer quota (it never decides one with an
            // older quota).
            py.detach(|| refresh(&fresh));
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != now {
            // The parent's: its connections are the parent's sockets.
            let old = core::mem::replace(&mut current.1, fresh);
            core::mem::forget(old);
            current.0 = now;
        }
        Ok(current.1.clone())
    }

    /// The caller's time, when the limiter runs on a manual clock.
    #[inline]
    fn now(&self) -> Option<u64> {
        use ratelimit_core::Clock;
        self.config.clock.as_ref().map(|c| c.now_ns())
    }

    #[inline]
    fn check(&self, py: Python<'_>, key: &Bound<'_, PyAny>, cost: u64) -> PyResult<CoreDecision> {
        let limiter = self.limiter(py)?;
        let key = convert::key(key)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.check_at(&*key, cost, now),
            None => limiter.check_n(&*key, cost),
        })
        .map_err(errors::redis)
    }

    fn redis_key<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let limiter = self.limiter(py)?;
        let key = convert::key(key)?;
        let name = limiter.redis_key(&*key).map_err(errors::redis)?;
        Ok(PyBytes::new(py, &name))
    }

    /// Replaces a window limiter's `L` and `W` for every key on the
    /// prefix, for every process sharing it (at the caller's time under a
    /// manual clock).
    fn reconfigure_window(&self, py: Python<'_>, window: A) -> PyResult<()> {
        let limiter = self.limiter(py)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.reconfigure_window_at(window, now),
            None => limiter.reconfigure_window(window),
        })
        .map_err(errors::redis)?;
        self.refresh.get_or_init(|| {
            |limiter: &RedisLimiter<A>| {
                let _ = limiter.refresh_window();
            }
        });
        Ok(())
    }
}

impl<A: Shaping> Remote<A> {
    fn reserve(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: u64,
        max_wait: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Reservation> {
        let max_wait_ns = match max_wait {
            Some(w) if !w.is_none() => convert::seconds_ns("max_wait", w, true)?,
            _ => None,
        };
        let limiter = self.limiter(py)?;
        let key = convert::key(key)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.reserve_at(&*key, cost, max_wait_ns, now),
            None => limiter.reserve(&*key, cost, max_wait_ns.map(Duration::from_nanos)),
        })
        .map(|r| Reservation::from(&r))
        .map_err(errors::redis)
    }

    /// Replaces the quota of every key on the prefix, for every process
    /// sharing it (at the caller's time under a manual clock).
    fn reconfigure(
        &self,
        py: Python<'_>,
        quota: Quota,
        strategy: ratelimit_core::Strategy,
    ) -> PyResult<()> {
        let limiter = self.limiter(py)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.reconfigure_at(quota, strategy, now),
            None => limiter.reconfigure(quota, strategy),
        })
        .map_err(errors::redis)?;
        self.refresh.get_or_init(|| {
            |limiter: &RedisLimiter<A>| {
                let _ = limiter.refresh_quota();
            }
        });
        Ok(())
    }

    /// `check` under the key's own quota.
    fn check_with_quota(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: u64,
        quota: &Quota,
    ) -> PyResult<CoreDecision> {
        let limiter = self.limiter(py)?;
        let key = convert::key(key)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.check_with_quota_at(&*key, cost, quota, now),
            None => limiter.check_with_quota(&*key, cost, quota),
        })
        .map_err(errors::redis)
    }

    /// `reserve` under the key's own quota.
    fn reserve_with_quota(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: u64,
        max_wait: Option<&Bound<'_, PyAny>>,
        quota: &Quota,
    ) -> PyResult<Reservation> {
        let max_wait_ns = match max_wait {
            Some(w) if !w.is_none() => convert::seconds_ns("max_wait", w, true)?,
            _ => None,
        };
        let limiter = self.limiter(py)?;
        let key = convert::key(key)?;
        let now = self.now();
        py.detach(|| match now {
            Some(now) => limiter.reserve_with_quota_at(&*key, cost, max_wait_ns, quota, now),
            None => limiter.reserve_with_quota(
                &*key,
                cost,
                max_wait_ns.map(Duration::from_nanos),
                quota,
            ),
        })
        .map(|r| Reservation::from(&r))
        .map_err(errors::redis)
    }
}

/// A bucket quota from Python's `capacity` and rate arguments.
fn quota(
    capacity: &Bound<'_, PyAny>,
    rate_name: &str,
    rate: &Bound<'_, PyAny>,
) -> PyResult<(Quota, String, u64, f64)> {
    bucket(capacity, rate_name, rate, Quota::new)
}

/// The `failure_policy=` names.
fn policy(name: &str) -> PyResult<FailurePolicy> {
    match name {
        "raise" => Ok(FailurePolicy::ReturnError),
        "deny" => Ok(FailurePolicy::FailClosed),
        "allow" => Ok(FailurePolicy::FailOpen),
        "local" => Ok(FailurePolicy::Fallback),
        other => Err(PyValueError::new_err(format!(
            "failure_policy must be 'raise', 'deny', 'allow' or 'local', not {other:?}"
        ))),
    }
}

/// The keyword options shared by both classes, parsed.
#[allow(clippy::too_many_arguments)]
fn config<A: Algorithm>(
    algorithm: A,
    redis_client: Option<&Bound<'_, PyAny>>,
    url: Option<&str>,
    prefix: &str,
    clock: Option<&Bound<'_, PyAny>>,
    failure_policy: &str,
    circuit_breaker: Option<(i128, f64)>,
    hash_keys: Option<&Bound<'_, PyAny>>,
    max_key_len: Option<usize>,
    connect_timeout: Option<&Bound<'_, PyAny>>,
    response_timeout: Option<&Bound<'_, PyAny>>,
    max_connections: Option<u32>,
) -> PyResult<Config<A>> {
    let duration = |name: &str, v: Option<&Bound<'_, PyAny>>| -> PyResult<Option<Duration>> {
        match v {
            Some(v) if !v.is_none() => Ok(convert::seconds_ns(name, v, false)?
                .map(Duration::from_nanos)
                .filter(|d| !d.is_zero())
                .map_or_else(
                    || Err(PyValueError::new_err(format!("{name} must be above zero"))),
                    |d| Ok(Some(d)),
                )?),
            _ => Ok(None),
        }
    };
    let options = Options {
        connect_timeout: duration("connect_timeout", connect_timeout)?,
        response_timeout: duration("response_timeout", response_timeout)?,
        max_connections,
    };
    let target = match (redis_client, url) {
        (Some(c), None) if !c.is_none() => connection::from_client(c, &options)?,
        (None, Some(u)) => connection::from_url(u, &options),
        (Some(c), None) if c.is_none() => {
            return Err(PyTypeError::new_err(
                "a Redis limiter needs redis_client (a redis.Redis) or url",
            ));
        }
        (None, None) => {
            return Err(PyTypeError::new_err(
                "a Redis limiter needs redis_client (a redis.Redis) or url",
            ));
        }
        _ => {
            return Err(PyTypeError::new_err("give redis_client or url, not both"));
        }
    };
    let breaker = match circuit_breaker {
        None => None,
        Some((failures, cool_down)) => {
            let failures = u32::try_from(failures).ok().filter(|&n| n >= 1);
            let cool_down = Duration::try_from_secs_f64(cool_down)
                .ok()
                .filter(|d| !d.is_zero());
            let (Some(failures), Some(cool_down)) = (failures, cool_down) else {
                return Err(PyValueError::new_err(
                    "circuit_breaker must be (failures, cool_down seconds) with 1 <= failures \
                     < 2**32 and cool_down > 0, or None",
                ));
            };
            Some(CircuitBreaker::new(failures, cool_down))
        }
    };
    let secret = match hash_keys {
        None => None,
        Some(s) if s.is_none() => None,
        Some(s) => {
            if let Ok(b) = s.cast::<PyBytes>() {
                Some(b.as_bytes().to_vec())
            } else if let Ok(t) = s.cast::<PyString>() {
                Some(t.to_cow()?.as_bytes().to_vec())
            } else {
                return Err(PyTypeError::new_err(format!(
                    "hash_keys must be a secret as str or bytes, not {}",
                    convert::type_name(s)
                )));
            }
        }
    };
    let clock = match PyClock::from_arg(clock.filter(|c| !c.is_none()))? {
        PyClock::Manual(c) => Some(c),
        PyClock::Monotonic(_) => None,
    };
    Ok(Config {
        algorithm,
        prefix: prefix.to_owned(),
        policy: policy(failure_policy)?,
        breaker,
        max_key_len,
        secret,
        clock,
        target,
    })
}

/// A bucket from Python's `capacity` and rate arguments: the algorithm,
/// the constructor's arguments for `repr()`, the capacity and the rate.
fn bucket<B>(
    capacity: &Bound<'_, PyAny>,
    rate_name: &str,
    rate: &Bound<'_, PyAny>,
    build: impl FnOnce(u64, Rate) -> Result<B, ratelimit_core::ConfigError>,
) -> PyResult<(B, String, u64, f64)> {
    let c = convert::capacity("capacity", capacity)?;
    let r = convert::rate(rate_name, rate)?;
    let shown = rate
        .repr()
        .map_or_else(|_| r.to_string(), |s| s.to_string());
    let algorithm = build(c, Rate::from_per_second_f64(r))
        .map_err(|e| PyValueError::new_err(format!("invalid {rate_name}={shown}: {e}")))?;
    let args = format!(
        "capacity={c}, {rate_name}={}",
        crate::memory::float_repr(capacity.py(), r)
    );
    Ok((algorithm, args, c, r))
}

/// A window algorithm from Python's `limit` and `window` arguments (as the
/// memory window classes read them): the algorithm, the constructor's
/// arguments for `repr()`, the limit and the window in nanoseconds.
fn window<W>(
    limit: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
    build: impl FnOnce(u64, Duration) -> Result<W, ratelimit_core::ConfigError>,
) -> PyResult<(W, String, u64, f64)> {
    let (algorithm, l, w) = crate::memory::window(limit, window, build)?;
    let args = format!(
        "limit={l}, window={}",
        crate::memory::float_repr(limit.py(), w as f64 / 1e9)
    );
    // The nanoseconds as f64: exact below 2**53 ns (104 days), and only
    // read back for the `window` getter, in seconds.
    Ok((algorithm, args, l, w as f64))
}

/// The methods every Redis limiter has; `$extra` adds what is its own
/// (`reserve` and the rate for the buckets, the window's getters for the
/// windows). `$make` turns the first two constructor arguments into the
/// algorithm (see [`bucket`] and [`window`]).
macro_rules! redis_limiter {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ty, $first:ident, $second:ident, $make:expr) { $($extra:tt)* }
    ) => {
        $(#[$doc])*
        #[pyclass(module = "rate_limiter", frozen)]
        pub(crate) struct $name {
            inner: Remote<$algorithm>,
            /// The quota's arguments, for `repr()`; the capacity (buckets)
            /// or limit (windows); the rate in units per second (buckets)
            /// or the window in nanoseconds (windows), as given.
            shown: Shown,
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (
                $first, $second, redis_client = None, *, url = None, prefix = "ratelimit",
                clock = None, failure_policy = "raise", circuit_breaker = Some((5, 1.0)),
                hash_keys = None, max_key_len = None, connect_timeout = None,
                response_timeout = None, max_connections = None
            ))]
            #[allow(clippy::too_many_arguments)]
            fn new(
                py: Python<'_>,
                $first: &Bound<'_, PyAny>,
                $second: &Bound<'_, PyAny>,
                redis_client: Option<&Bound<'_, PyAny>>,
                url: Option<&str>,
                prefix: &str,
                clock: Option<&Bound<'_, PyAny>>,
                failure_policy: &str,
                circuit_breaker: Option<(i128, f64)>,
                hash_keys: Option<&Bound<'_, PyAny>>,
                max_key_len: Option<&Bound<'_, PyAny>>,
                connect_timeout: Option<&Bound<'_, PyAny>>,
                response_timeout: Option<&Bound<'_, PyAny>>,
                max_connections: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Self> {
                let max_key_len = max_key_len
                    .filter(|v| !v.is_none())
                    .map(|v| convert::whole("max_key_len", v, 1))
                    .transpose()?
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
                let max_connections = max_connections
                    .filter(|v| !v.is_none())
                    .map(|v| convert::whole("max_connections", v, 1))
                    .transpose()?
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                let (algorithm, args, limit, param): ($algorithm, String, u64, f64) =
                    $make($first, $second)?;
                let config = config(
                    algorithm, redis_client, url, prefix, clock, failure_policy,
                    circuit_breaker, hash_keys, max_key_len, connect_timeout,
                    response_timeout, max_connections,
                )?;
                Ok(Self { inner: Remote::new(py, config)?, shown: Shown::new(args, limit, param) })
            }

            /// The original API: `check(key)` as a `RateLimitResult`. Raises
            /// a `RedisLimitError` (also a redis-py exception) when Redis
            /// fails and `failure_policy` is `'raise'`.
            fn allow_request(
                &self,
                py: Python<'_>,
                key: &Bound<'_, PyAny>,
            ) -> PyResult<RateLimitResult> {
                let d = self.inner.check(py, key, 1)?;
                Ok(RateLimitResult::from_decision(&d))
            }

            /// Allows or denies a request of `cost` units (default 1) for
            /// `key` now, in one round trip.
            #[pyo3(signature = (key, cost = None), text_signature = "($self, key, cost=1)")]
            fn check(
                &self,
                py: Python<'_>,
                key: &Bound<'_, PyAny>,
                cost: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Decision> {
                let d = self.inner.check(py, key, convert::cost(cost)?)?;
                Ok(Decision::from(&d))
            }

            /// Units `key` could use now, consuming nothing (one round trip).
            fn remaining(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<u64> {
                Ok(self.inner.check(py, key, 0)?.remaining)
            }

            /// Seconds until `key` is back to its initial state, consuming
            /// nothing (one round trip).
            fn reset_after(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<f64> {
                let d = self.inner.check(py, key, 0)?;
                Ok(crate::result::ns(d.reset_after) as f64 / 1e9)
            }

            /// The Redis key that holds `key`'s state (`<prefix>|<key>`, or
            /// its hashed form), as a Rust service would name it.
            fn redis_key<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'_, PyAny>,
            ) -> PyResult<Bound<'py, PyBytes>> {
                self.inner.redis_key(py, key)
            }

            /// The key prefix (namespace).
            #[getter]
            fn prefix(&self) -> &str {
                &self.inner.config.prefix
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let prefix = PyString::new(py, &self.inner.config.prefix).repr()?;
                let server = PyString::new(py, &self.inner.config.target.address()).repr()?;
                Ok(format!(
                    "{}({}, prefix={prefix}, server={server})",
                    stringify!($name),
                    self.shown.args(),
                ))
            }

            $($extra)*
        }
    };
}

/// `TokenBucketRedis`'s quota arguments.
fn token_bucket(
    capacity: &Bound<'_, PyAny>,
    refill_rate: &Bound<'_, PyAny>,
) -> PyResult<(TokenBucket, String, u64, f64)> {
    bucket(capacity, "refill_rate", refill_rate, TokenBucket::with_rate)
}

/// `LeakyBucketRedis`'s quota arguments.
fn leaky_bucket(
    capacity: &Bound<'_, PyAny>,
    leak_rate: &Bound<'_, PyAny>,
) -> PyResult<(LeakyBucket, String, u64, f64)> {
    bucket(capacity, "leak_rate", leak_rate, LeakyBucket::with_rate)
}

/// `FixedWindowRedis`'s quota arguments.
fn fixed_window(
    limit: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
) -> PyResult<(FixedWindow, String, u64, f64)> {
    self::window(limit, window, FixedWindow::new)
}

/// `SlidingWindowRedis`'s quota arguments.
fn sliding_window(
    limit: &Bound<'_, PyAny>,
    window: &Bound<'_, PyAny>,
) -> PyResult<(SlidingWindow, String, u64, f64)> {
    self::window(limit, window, SlidingWindow::new)
}

/// A bucket class: `redis_limiter!` with `reserve`, the quota changes
/// (`reconfigure`, `check_with_quota`, `reserve_with_quota`) and the
/// `capacity` and rate getters, the rate argument named `$rate`.
macro_rules! redis_bucket {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ty, $rate:ident, $make:expr)
    ) => {
        redis_limiter! {
            $(#[$doc])*
            $name($algorithm, capacity, $rate, $make) {
                /// Admits `cost` units to proceed after a wait of at most
                /// `max_wait` seconds (`None`: any), or rejects the request and
                /// consumes nothing.
                #[pyo3(signature = (key, cost = None, max_wait = None), text_signature = "($self, key, cost=1, max_wait=None)")]
                fn reserve(
                    &self,
                    py: Python<'_>,
                    key: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                    max_wait: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Reservation> {
                    self.inner.reserve(py, key, convert::cost(cost)?, max_wait)
                }

                /// Replaces the quota of every key on this prefix while it
                /// runs, for every process (Python or Rust) sharing it: each
                /// key's state is converted by `strategy`
                /// (`"keep-consumed"`, the default, `"keep-available"`,
                /// `"proportional"`, `"reset"`), never giving a key a free
                /// burst. Other processes adopt the change at the first key
                /// they meet that was converted to it.
                #[pyo3(signature = (capacity, $rate, *, strategy = None))]
                fn reconfigure(
                    &self,
                    py: Python<'_>,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    strategy: Option<&str>,
                ) -> PyResult<()> {
                    let strategy = crate::memory::strategy(strategy)?;
                    let (quota, args, limit, per_second) =
                        quota(capacity, stringify!($rate), $rate)?;
                    self.inner.reconfigure(py, quota, strategy)?;
                    self.shown.set(args, limit, per_second);
                    Ok(())
                }

                /// `check` under `key`'s own quota of `capacity` and `$rate`
                /// (converted, keep-consumed, when the key's quota changes).
                #[pyo3(signature = (key, capacity, $rate, cost = None))]
                fn check_with_quota(
                    &self,
                    py: Python<'_>,
                    key: &Bound<'_, PyAny>,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Decision> {
                    let (quota, ..) = quota(capacity, stringify!($rate), $rate)?;
                    let d = self.inner.check_with_quota(py, key, convert::cost(cost)?, &quota)?;
                    Ok(Decision::from(&d))
                }

                /// `reserve` under `key`'s own quota (see `check_with_quota`).
                #[pyo3(signature = (key, capacity, $rate, cost = None, max_wait = None))]
                fn reserve_with_quota(
                    &self,
                    py: Python<'_>,
                    key: &Bound<'_, PyAny>,
                    capacity: &Bound<'_, PyAny>,
                    $rate: &Bound<'_, PyAny>,
                    cost: Option<&Bound<'_, PyAny>>,
                    max_wait: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<Reservation> {
                    let (quota, ..) = quota(capacity, stringify!($rate), $rate)?;
                    self.inner
                        .reserve_with_quota(py, key, convert::cost(cost)?, max_wait, &quota)
                }

                /// The capacity.
                #[getter]
                fn capacity(&self) -> u64 {
                    self.shown.limit()
                }

                /// Units per second.
                #[getter]
                fn $rate(&self) -> f64 {
                    self.shown.param()
                }
            }
        }
    };
}

redis_bucket! {
    /// A token bucket per key, shared through Redis with every process
    /// (Python or Rust) on the same server and prefix.
    TokenBucketRedis(TokenBucket, refill_rate, token_bucket)
}

redis_bucket! {
    /// A leaky bucket per key, shared through Redis with every process
    /// (Python or Rust) on the same server and prefix.
    LeakyBucketRedis(LeakyBucket, leak_rate, leaky_bucket)
}

/// A window class: `redis_limiter!` with `reconfigure` and the `limit`
/// and `window` getters (no `reserve`: a window cannot shape, it has no
/// rate to space admitted requests by).
macro_rules! redis_window {
    (
        $(#[$doc:meta])*
        $name:ident($algorithm:ty, $make:expr) {
            $(#[$limit_doc:meta])*
            limit;
        }
    ) => {
        redis_limiter! {
            $(#[$doc])*
            $name($algorithm, limit, window, $make) {
                /// Replaces the quota of every key on this prefix while it
                /// runs, for every process (Python or Rust) sharing it:
                /// under the same `window` each key keeps its counts
                /// against the new `limit`; a new `window` starts every key
                /// afresh. Other processes adopt the change at the first
                /// key they meet that was decided under it.
                fn reconfigure(
                    &self,
                    py: Python<'_>,
                    limit: &Bound<'_, PyAny>,
                    window: &Bound<'_, PyAny>,
                ) -> PyResult<()> {
                    let (algorithm, args, l, w) = $make(limit, window)?;
                    self.inner.reconfigure_window(py, algorithm)?;
                    self.shown.set(args, l, w);
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
    };
}

redis_window! {
    /// At most `limit` units per `window` seconds per key, shared through
    /// Redis with every process (Python or Rust) on the same server and
    /// prefix. The windows are aligned to the Unix epoch under the server's
    /// time (a one-minute window resets on the minute), to the caller's
    /// clock under `clock=`. Policing only: there is no `reserve`.
    FixedWindowRedis(FixedWindow, fixed_window) {
        /// The most units admitted per window.
        limit;
    }
}

redis_window! {
    /// About `limit` units in any `window`-second span per key (the sliding
    /// window counter), shared through Redis with every process (Python or
    /// Rust) on the same server and prefix. Policing only: there is no
    /// `reserve`.
    SlidingWindowRedis(SlidingWindow, sliding_window) {
        /// The limit per window-long span.
        limit;
    }
}
