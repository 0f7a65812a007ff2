//! The circuit breaker's state machine, in one atomic word, with time
//! passed in (nanoseconds on the limiter's monotonic clock), so that it is
//! tested without sleeping.
//!
//! Closed (counting consecutive failures) → Open (until a time) →
//! half-open (one probe in flight, until a deadline) → Closed on the
//! probe's success, Open again on its failure. A probe that never reports
//! (its future was dropped) is replaced by the next call once its deadline
//! (one cool-down) has passed, so the breaker cannot stay half-open.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::config::CircuitBreaker;

const TAG_SHIFT: u32 = 62;
const VALUE: u64 = (1 << TAG_SHIFT) - 1;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// The state, as the breaker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Calls go to Redis; this many failed in a row.
    Closed(u32),
    /// No call goes to Redis until this time (ns).
    Open(u64),
    /// One probe is in flight; another may go at this time (ns).
    HalfOpen(u64),
}

fn decode(word: u64) -> State {
    let value = word & VALUE;
    match word >> TAG_SHIFT {
        CLOSED => State::Closed(u32::try_from(value).unwrap_or(u32::MAX)),
        OPEN => State::Open(value),
        _ => State::HalfOpen(value),
    }
}

fn encode(state: State) -> u64 {
    match state {
        State::Closed(n) => u64::from(n),
        State::Open(t) => (OPEN << TAG_SHIFT) | t.min(VALUE),
        State::HalfOpen(t) => (HALF_OPEN << TAG_SHIFT) | t.min(VALUE),
    }
}

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Send, as an ordinary call.
    Call,
    /// Send, as the one probe of a half-open breaker.
    Probe,
    /// Do not send; the breaker lets a call through in this many ns.
    Refused(u64),
}

/// A change of state worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Closed (or a failed probe) → Open.
    Opened,
    /// Half-open or open → Closed.
    Closed,
}

/// The breaker of one limiter; without a configuration it only counts
/// failures (for the health) and never opens.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: Option<CircuitBreaker>,
    /// The encoded [`State`]. Every access is Relaxed: the word is the
    /// whole state, it publishes no other data, and the compare-exchange
    /// loops below make each transition atomic on its own.
    word: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(config: Option<CircuitBreaker>) -> Self {
        Self {
            config,
            word: AtomicU64::new(encode(State::Closed(0))),
        }
    }

    fn cool_down_ns(&self) -> u64 {
        self.config.map_or(0, |c| {
            u64::try_from(c.cool_down().as_nanos()).unwrap_or(u64::MAX)
        })
    }

    fn opens_at(&self, failures: u32) -> bool {
        self.config.is_some_and(|c| failures >= c.failures())
    }

    pub(crate) fn state(&self) -> State {
        decode(self.word.load(Ordering::Relaxed))
    }

    /// Whether a call made at `now` may be sent.
    pub(crate) fn permit(&self, now: u64) -> Permit {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let until = match decode(word) {
                State::Closed(_) => return Permit::Call,
                State::Open(until) | State::HalfOpen(until) => until,
            };
            if now < until {
                return Permit::Refused(until - now);
            }
            // The cool-down (or the last probe's deadline) is over: this
            // call is the probe, if no other call took the role first.
            let probe = encode(State::HalfOpen(now.saturating_add(self.cool_down_ns())));
            match self
                .word
                .compare_exchange(word, probe, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Permit::Probe,
                Err(current) => word = current,
            }
        }
    }

    /// Records a call that reached Redis (whatever Redis answered).
    pub(crate) fn success(&self) -> Option<Transition> {
        let closed = encode(State::Closed(0));
        // Fast path: nothing to change (the usual case, a load only).
        let word = self.word.load(Ordering::Relaxed);
        if word == closed {
            return None;
        }
        let before = decode(self.word.swap(closed, Ordering::Relaxed));
        match before {
            State::Closed(_) => None,
            State::Open(_) | State::HalfOpen(_) => Some(Transition::Closed),
        }
    }

    /// Records a call that could not reach Redis, at `now`.
    pub(crate) fn failure(&self, permit: Permit, now: u64) -> Option<Transition> {
        let open = encode(State::Open(now.saturating_add(self.cool_down_ns())));
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let (next, transition) = match decode(word) {
                State::Closed(n) if self.opens_at(n.saturating_add(1)) => {
                    (open, Some(Transition::Opened))
                }
                State::Closed(n) => (encode(State::Closed(n.saturating_add(1))), None),
                // The probe failed: open again for a cool-down.
                State::HalfOpen(_) if permit == Permit::Probe => (open, Some(Transition::Opened)),
                // A call sent before the circuit opened: already counted.
                State::HalfOpen(_) | State::Open(_) => return None,
            };
            match self
                .word
                .compare_exchange(word, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return transition,
                Err(current) => word = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_configuration_it_counts_and_never_opens() {
        let b = super::Breaker::new(None);
        for _ in 0..100 {
            assert_eq!(b.failure(super::Permit::Call, 0), None);
            assert_eq!(b.permit(0), super::Permit::Call);
        }
        assert_eq!(b.state(), super::State::Closed(100));
    }

    use core::time::Duration;

    use super::*;

    const S: u64 = 1_000_000_000;

    fn breaker() -> Breaker {
        Breaker::new(Some(CircuitBreaker::new(3, Duration::from_secs(2))))
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        assert_eq!(b.failure(Permit::Call, 0), None);
        assert_eq!(b.failure(Permit::Call, 0), None);
        // A success in between starts the count again.
        assert_eq!(b.success(), None);
        assert_eq!(b.state(), State::Closed(0));
        assert_eq!(b.failure(Permit::Call, 0), None);
        assert_eq!(b.failure(Permit::Call, 0), None);
        assert_eq!(b.failure(Permit::Call, 10), Some(Transition::Opened));
        assert_eq!(b.state(), State::Open(10 + 2 * S));
        assert_eq!(b.permit(10 + S), Permit::Refused(S));
        // Failures of calls sent before it opened change nothing.
        assert_eq!(b.failure(Permit::Call, 20), None);
        assert_eq!(b.state(), State::Open(10 + 2 * S));
    }

    #[test]
    fn one_probe_then_closed_or_open_again() {
        let b = breaker();
        for _ in 0..3 {
            let _ = b.failure(Permit::Call, 0);
        }
        assert_eq!(b.permit(2 * S - 1), Permit::Refused(1));
        // The cool-down is over: one probe, the others still refused.
        assert_eq!(b.permit(2 * S), Permit::Probe);
        assert_eq!(b.permit(2 * S), Permit::Refused(2 * S));
        // The probe fails: open for another cool-down.
        assert_eq!(b.failure(Permit::Probe, 3 * S), Some(Transition::Opened));
        assert_eq!(b.permit(3 * S), Permit::Refused(2 * S));
        // The next probe succeeds: closed.
        assert_eq!(b.permit(5 * S), Permit::Probe);
        assert_eq!(b.success(), Some(Transition::Closed));
        assert_eq!(b.permit(5 * S), Permit::Call);
        assert_eq!(b.state(), State::Closed(0));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced() {
        let b = breaker();
        for _ in 0..3 {
            let _ = b.failure(Permit::Call, 0);
        }
        assert_eq!(b.permit(2 * S), Permit::Probe);
        // Its future was dropped: no report. One cool-down later, the next
        // call probes.
        assert_eq!(b.permit(4 * S - 1), Permit::Refused(1));
        assert_eq!(b.permit(4 * S), Permit::Probe);
    }

    #[test]
    fn one_failure_opens_a_breaker_of_one() {
        let b = Breaker::new(Some(CircuitBreaker::new(1, Duration::from_nanos(5))));
        assert_eq!(b.failure(Permit::Call, 0), Some(Transition::Opened));
        assert_eq!(b.permit(4), Permit::Refused(1));
        assert_eq!(b.permit(5), Permit::Probe);
    }
}
