//! The conformance run: every scenario of the blob through
//! `ratelimit-embedded`'s [`Limiter`] (the core's math behind a critical
//! section, one limiter per key: an array of states), each answer compared
//! with the scenario's, field by field, as the replay tests of the other
//! backends compare them.

use core::fmt;
use core::time::Duration;

use ratelimit_embedded::{
    Algorithm, AnyAlgorithm, AnyBucket, ConfigError, Decision, Limiter, Rate, Reservation,
};

use crate::format::{Blob, Event, Malformed, Op, Outcome, Param, Scenario};
use crate::layout::MAX_KEYS;

/// Where the run's lines go: semihosting on the target, stdout on the host.
pub(crate) trait Report {
    /// Writes one line.
    fn line(&mut self, args: fmt::Arguments<'_>);
}

/// What a run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) scenarios: u64,
    pub(crate) events: u64,
    pub(crate) passed: u64,
    pub(crate) failed: u64,
}

impl Tally {
    /// Every scenario ran and passed, and there was at least one.
    pub(crate) fn ok(&self) -> bool {
        self.failed == 0 && self.passed == self.scenarios && self.scenarios > 0
    }
}

/// Failed scenarios described in full; the count covers the rest.
const DETAILED: u64 = 10;

/// Runs every scenario of `blob`, reporting each failed one (the first
/// [`DETAILED`] in full) and a closing count.
///
/// # Errors
/// [`Malformed`] when the blob cannot be read (a bug of `build.rs`).
pub(crate) fn run(blob: &[u8], report: &mut impl Report) -> Result<Tally, Malformed> {
    let mut blob = Blob::parse(blob)?;
    let mut tally = Tally::default();
    while let Some(scenario) = blob.next_scenario()? {
        tally.scenarios += 1;
        let subject = Subject::new(&scenario);
        let mut failure = None;
        let mut t_ns = 0;
        for index in 0..scenario.events {
            // Every event is read, even after a failure, to reach the next
            // scenario.
            let event = blob.next_event(t_ns)?;
            t_ns = event.t_ns;
            tally.events += 1;
            if failure.is_none() {
                let got = match &subject {
                    Ok(subject) => subject.answer(&event),
                    Err(e) => Err(Refusal::Config(*e)),
                };
                if got != Ok(event.expected) {
                    failure = Some((index, event, got));
                }
            }
        }
        match failure {
            None => tally.passed += 1,
            Some((index, event, got)) => {
                tally.failed += 1;
                if tally.failed <= DETAILED {
                    describe(report, &scenario, index, &event, &got);
                }
            }
        }
    }
    if blob.planted {
        report.line(format_args!(
            "(this build planted a mismatch on purpose: RATELIMIT_PLANT_MISMATCH)"
        ));
    }
    report.line(format_args!(
        "part {}/{}: {} scenarios, {} events: {} passed, {} failed",
        blob.part, blob.parts, tally.scenarios, tally.events, tally.passed, tally.failed
    ));
    Ok(tally)
}

fn describe(
    report: &mut impl Report,
    s: &Scenario<'_>,
    index: u64,
    event: &Event,
    got: &Result<Outcome, Refusal>,
) {
    report.line(format_args!(
        "MISMATCH {} scenario {} ({}, capacity {}, {}) event {index}: \
         {:?} key #{} at t_ns {} cost {}",
        s.file,
        s.id,
        s.algorithm,
        s.capacity,
        ParamText(s.param),
        event.op,
        event.key,
        event.t_ns,
        event.cost
    ));
    report.line(format_args!("  expected {:?}", event.expected));
    report.line(format_args!("  got      {got:?}"));
}

/// `rate 2/s` or `window 1000000000 ns`.
struct ParamText<'a>(Param<'a>);

impl fmt::Display for ParamText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Param::Rate(rate) => write!(f, "rate {rate}/s"),
            Param::WindowNs(ns) => write!(f, "window {ns} ns"),
        }
    }
}

/// Why no answer could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The scenario's parameters were refused by the core.
    Config(ConfigError),
    /// A `reserve` on a window algorithm, which cannot shape.
    CannotShape,
}

/// The limiters of one scenario, one per key, fresh.
enum Subject {
    Buckets([Limiter<AnyBucket>; MAX_KEYS]),
    Windows([Limiter<AnyAlgorithm>; MAX_KEYS]),
}

impl Subject {
    fn new(s: &Scenario<'_>) -> Result<Self, ConfigError> {
        Ok(match s.param {
            Param::Rate(text) => {
                let rate: Rate = text.parse()?;
                let algorithm = AnyAlgorithm::with_rate(s.algorithm, s.capacity, rate)?;
                let bucket = algorithm.as_bucket().ok_or(ConfigError::NeedsWindow)?;
                Self::Buckets(core::array::from_fn(|_| Limiter::new(bucket)))
            }
            Param::WindowNs(window_ns) => {
                if s.algorithm.is_bucket() {
                    return Err(ConfigError::NeedsRate);
                }
                let window = Duration::from_nanos(window_ns);
                let algorithm = AnyAlgorithm::with_window(s.algorithm, s.capacity, window)?;
                Self::Windows(core::array::from_fn(|_| Limiter::new(algorithm)))
            }
        })
    }

    /// The answer to `event`, in the replay format's terms.
    fn answer(&self, event: &Event) -> Result<Outcome, Refusal> {
        let (t, cost) = (event.t_ns, event.cost);
        Ok(match (self, event.op) {
            (Self::Buckets(limiters), Op::Check) => checked(&limiters[event.key], t, cost),
            (Self::Windows(limiters), Op::Check) => checked(&limiters[event.key], t, cost),
            (Self::Buckets(limiters), Op::Reserve { max_wait_ns }) => {
                match limiters[event.key].reserve_at(t, cost, max_wait_ns) {
                    Ok(Reservation::Admitted { wait, .. }) => {
                        Outcome::Admitted { wait_ns: ns(wait) }
                    }
                    Ok(Reservation::Rejected { retry_after, .. }) => Outcome::Rejected {
                        retry_after_ns: retry_after.map(ns),
                    },
                    // Can never be admitted: nothing is consumed.
                    Err(_) => Outcome::Rejected {
                        retry_after_ns: None,
                    },
                }
            }
            (Self::Windows(_), Op::Reserve { .. }) => return Err(Refusal::CannotShape),
        })
    }
}

/// A `check`, in the replay format's terms: a cost above the limit is
/// denied with `retry_after: null` and the unchanged state's view.
fn checked<A: Algorithm>(limiter: &Limiter<A>, t: u64, cost: u64) -> Outcome {
    let outcome = |d: Decision| Outcome::Checked {
        allowed: d.allowed,
        remaining: d.remaining,
        retry_after_ns: d.retry_after.map(ns),
        reset_after_ns: ns(d.reset_after),
    };
    match limiter.check_at(t, cost) {
        Ok(decision) => outcome(decision),
        Err(_) => outcome(Decision {
            allowed: false,
            retry_after: None,
            ..limiter.peek_at(t)
        }),
    }
}

/// A duration as whole nanoseconds; every one here came from a `u64`.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::ToOwned;
    use std::string::String;

    /// The report as text, for the assertions.
    #[derive(Default)]
    struct Text(String);

    impl Report for Text {
        fn line(&mut self, args: fmt::Arguments<'_>) {
            use fmt::Write;
            writeln!(self.0, "{args}").unwrap();
        }
    }

    fn blob() -> &'static [u8] {
        crate::SCENARIOS
    }

    #[test]
    fn every_scenario_passes_on_the_host() {
        let mut text = Text::default();
        let tally = run(blob(), &mut text).unwrap();
        let header = Blob::parse(blob()).unwrap();
        // All four files: 180 bucket and 180 window scenarios.
        if header.parts == 1 {
            assert_eq!(tally.scenarios, 360, "{}", text.0);
            assert_eq!(tally.events, 63_398);
        }
        // A build with a planted mismatch fails exactly one scenario.
        if header.planted {
            assert_eq!(tally.failed, 1, "{}", text.0);
        } else {
            assert!(tally.ok(), "{}", text.0);
        }
    }

    /// The comparison catches a single wrong field: the first `check` of the
    /// first scenario with one more `remaining` than the core answers.
    #[test]
    fn a_corrupted_expectation_fails_the_run() {
        let mut bytes = std::vec::Vec::from(blob());
        let mut header = Blob::parse(&bytes).unwrap();
        let first = header.next_scenario().unwrap().unwrap();
        let (file, id) = (first.file.to_owned(), first.id);
        let before = bytes.len() - header.remaining_bytes();
        // The first event starts right after the scenario header: find its
        // `remaining` by decoding, then rewrite that byte (a small varint).
        let event = header.next_event(0).unwrap();
        let Outcome::Checked { remaining, .. } = event.expected else {
            panic!("the first event of {file} is a check");
        };
        assert!(remaining < 0x7F, "a one-byte varint");
        let at = find_remaining(&bytes[before..], remaining) + before;
        bytes[at] += 1;

        let mut text = Text::default();
        let tally = run(&bytes, &mut text).unwrap();
        assert_eq!(tally.failed, 1, "{}", text.0);
        assert!(!tally.ok());
        assert!(
            text.0.contains(&format!("MISMATCH {file} scenario {id} (")),
            "{}",
            text.0
        );
        assert!(text.0.contains(&format!("remaining: {}", remaining + 1)));
        assert!(text.0.contains("1 failed"), "{}", text.0);
    }

    /// The offset of the first event's `remaining` varint in `event`: after
    /// the flags, the optional `dt` and the cost.
    fn find_remaining(event: &[u8], remaining: u64) -> usize {
        let flags = event[0];
        let mut at = 1;
        let mut skip = || {
            while event[at] & 0x80 != 0 {
                at += 1;
            }
            at += 1;
        };
        if flags & crate::layout::ADVANCE != 0 {
            skip();
        }
        skip();
        assert_eq!(u64::from(event[at]), remaining);
        at
    }

    #[test]
    fn a_truncated_blob_is_an_error_not_a_panic() {
        let bytes = &blob()[..blob().len() / 2];
        let mut text = Text::default();
        assert!(run(bytes, &mut text).is_err());
        assert!(run(b"nope", &mut text).is_err());
    }
}
