//! The local limiter of [`FailurePolicy::Fallback`](crate::FailurePolicy):
//! the core's algorithm over a map in this process, on the wall clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ratelimit_core::{Algorithm, Decision, InsufficientCapacity, Reason, Reservation};

/// Above this many keys, expired states (equivalent to missing keys) are
/// dropped before inserting another.
const PRUNE_ABOVE: usize = 100_000;

/// States by Redis key, only touched while Redis fails.
#[derive(Debug, Default)]
pub(crate) struct Fallback {
    states: Mutex<HashMap<Vec<u8>, u64>>,
}

impl Fallback {
    fn step<D>(
        &self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(u64) -> Result<ratelimit_core::Step<D>, InsufficientCapacity>,
    ) -> Result<D, InsufficientCapacity> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = states.get(key).copied().unwrap_or(0);
        let step = f(tat)?;
        if let Some(next) = step.next {
            if states.len() >= PRUNE_ABOVE && !states.contains_key(key) {
                states.retain(|_, tat| *tat > now);
            }
            states.insert(key.to_vec(), next);
        }
        Ok(step.decision)
    }

    pub(crate) fn check<A: Algorithm>(
        &self,
        algorithm: &A,
        key: &[u8],
        now: u64,
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        self.step(key, now, |tat| algorithm.check(tat, now, cost))
            .map(|d| Decision {
                reason: Reason::Fallback,
                ..d
            })
    }

    pub(crate) fn reserve<A: Algorithm>(
        &self,
        algorithm: &A,
        key: &[u8],
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
        self.step(key, now, |tat| {
            algorithm.reserve(tat, now, cost, max_wait_ns)
        })
        .map(|r| Reservation {
            reason: Reason::Fallback,
            ..r
        })
    }
}
