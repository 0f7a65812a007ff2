#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod clock;
mod decision;
mod error;
mod gcra;
mod quota;
mod rate;

pub use crate::clock::Clock;
#[cfg(target_has_atomic = "64")]
pub use crate::clock::ManualClock;
pub use crate::decision::{AllowResult, Decision, Reason, Reservation};
pub use crate::error::{ConfigError, InsufficientCapacity};
pub use crate::gcra::{Algorithm, AlgorithmKind, Answer, LeakyBucket, Step, TokenBucket, Verdict};
pub use crate::quota::Quota;
pub use crate::rate::Rate;
