//! `rate_limiter`: the Python API of the system this project replaces
//! (`TokenBucketMemory`, `LeakyBucketMemory`, `TokenBucketRedis`,
//! `LeakyBucketRedis`, all answering `allow_request(key)` with a
//! `RateLimitResult`), backed by `ratelimit-memory` and `ratelimit-redis`,
//! plus the richer API of those crates in Python style (`check`, `reserve`,
//! the window algorithms). This crate is the extension module
//! `rate_limiter._native`; `python/rate_limiter/` is the package around it.
//! See README.md for the Python user's view.

mod clock;
mod connection;
mod convert;
mod errors;
mod memory;
mod redis_limiter;
mod result;

use pyo3::prelude::*;

/// The native half of `rate_limiter`: import from `rate_limiter` instead.
#[pymodule]
#[pyo3(name = "_native")]
mod native {
    #[pymodule_export]
    use crate::clock::ManualClock;
    #[pymodule_export]
    use crate::connection::_after_fork_in_child;
    #[pymodule_export]
    use crate::memory::{
        FixedWindowMemory, LeakyBucketMemory, SlidingWindowMemory, TokenBucketMemory,
    };
    #[pymodule_export]
    use crate::redis_limiter::{
        FixedWindowRedis, LeakyBucketRedis, SlidingWindowRedis, TokenBucketRedis,
    };
    #[pymodule_export]
    use crate::result::{Decision, RateLimitResult, Reservation};

    /// The package's version (Python's name for it).
    #[pymodule_export]
    #[allow(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    /// Whether this build speaks TLS (`rediss://`, redis-py's `ssl=True`).
    #[pymodule_export]
    const HAS_TLS: bool = cfg!(feature = "tls");

    #[pymodule_export]
    const DEFAULT_MAX_KEYS: usize = ratelimit_memory::DEFAULT_MAX_KEYS;
}
