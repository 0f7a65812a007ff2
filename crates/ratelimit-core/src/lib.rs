#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod algorithm;
mod any;
mod clock;
mod decision;
mod divisor;
mod error;
mod gcra;
mod quota;
mod rate;
mod reconfigure;
mod window;

pub use crate::algorithm::{Algorithm, AlgorithmKind, Answer, Shaping, Step, Verdict};
pub use crate::any::{AnyAlgorithm, AnyBucket};
pub use crate::clock::Clock;
#[cfg(target_has_atomic = "64")]
pub use crate::clock::ManualClock;
pub use crate::decision::{AllowResult, Decision, Reason, Reservation};
pub use crate::error::{ConfigError, InsufficientCapacity, UnknownAlgorithm};
pub use crate::gcra::{LeakyBucket, TokenBucket};
pub use crate::quota::Quota;
pub use crate::rate::Rate;
pub use crate::reconfigure::{Strategy, UnknownStrategy};
pub use crate::window::{FixedWindow, SlidingWindow, WindowState};
