#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod acquire;
mod bucket;
mod clock;
mod compat;
mod config;
mod key;
mod keyed;
mod layout;
mod multi;
mod prefetch;
mod receipt;
mod sync;
mod word;

pub use crate::acquire::Sleep;
#[cfg(feature = "tokio")]
pub use crate::acquire::TokioClock;
pub use crate::bucket::Bucket;
pub use crate::clock::MonotonicClock;
pub use crate::compat::{LeakyBucketMemory, TokenBucketMemory};
pub use crate::key::{DEFAULT_MAX_KEY_LEN, KeyBytes};
pub use crate::keyed::{DEFAULT_MAX_KEYS, DefaultHashBuilder, KeyedBuilder, KeyedLimiter};
pub use crate::multi::{BucketLimit, KeyedLimit, Limit, MultiDecision, check_all};
pub use crate::receipt::Receipt;
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
