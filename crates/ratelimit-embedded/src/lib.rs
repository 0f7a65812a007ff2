#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

mod limiter;
mod local;

pub use crate::limiter::Limiter;
pub use crate::local::LocalLimiter;
pub use ratelimit_core::{
    Algorithm, AlgorithmKind, AnyAlgorithm, AnyBucket, Clock, ConfigError, Decision, FixedWindow,
    InsufficientCapacity, LeakyBucket, Quota, Rate, Reason, Reservation, Shaping, SlidingWindow,
    TokenBucket,
};

/// The examples of `docs/embedded.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/embedded.md")]
pub struct EmbeddedDocDoctests;
