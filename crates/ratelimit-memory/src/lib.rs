#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod bucket;
mod clock;
mod compat;
mod keyed;
mod layout;
mod sync;

pub use crate::bucket::Bucket;
pub use crate::clock::MonotonicClock;
pub use crate::compat::{LeakyBucketMemory, TokenBucketMemory};
pub use crate::keyed::{DEFAULT_MAX_KEYS, DefaultHashBuilder, KeyedBuilder, KeyedLimiter};
pub use ratelimit_core::{
    Algorithm, AllowResult, Clock, ConfigError, Decision, InsufficientCapacity, LeakyBucket,
    ManualClock, Quota, Rate, Reason, Reservation, TokenBucket,
};

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
