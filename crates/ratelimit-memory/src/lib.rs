#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod bucket;
mod clock;
mod compat;
mod keyed;
mod layout;
mod sync;
mod word;

pub use crate::bucket::Bucket;
pub use crate::clock::MonotonicClock;
pub use crate::compat::{LeakyBucketMemory, TokenBucketMemory};
pub use crate::keyed::{DEFAULT_MAX_KEYS, DefaultHashBuilder, KeyedBuilder, KeyedLimiter};
pub use crate::word::Word;
pub use ratelimit_core::{
    Algorithm, AlgorithmKind, AllowResult, AnyAlgorithm, AnyBucket, Clock, ConfigError, Decision,
    FixedWindow, InsufficientCapacity, LeakyBucket, ManualClock, Quota, Rate, Reason, Reservation,
    Shaping, SlidingWindow, Strategy, TokenBucket,
};

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
