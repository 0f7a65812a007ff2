//! The replay loop: events in, one decision line out per event, and an
//! optional per-key summary.

use core::fmt;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use crate::backend::Backend;
use crate::event::{Event, Op, parse_event};
use crate::output::{render_check, render_reserve};

/// Why a replay stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// A line is not a valid event.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An event's `t_ns` is smaller than the previous event's.
    TimeWentBackwards {
        /// 1-based line number.
        line: usize,
        /// The previous event's time.
        previous_ns: u64,
        /// This event's time.
        t_ns: u64,
    },
    /// The backend failed on this line's event.
    Backend {
        /// 1-based line number.
        line: usize,
        /// The backend's error.
        message: String,
    },
    /// Reading the input or writing the output failed.
    Io(io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line, message } => {
                write!(f, "line {line}: malformed event: {message}")
            }
            Self::TimeWentBackwards {
                line,
                previous_ns,
                t_ns,
            } => write!(
                f,
                "line {line}: t_ns {t_ns} is before the previous event's {previous_ns}; time must never decrease"
            ),
            Self::Backend { line, message } => write!(f, "line {line}: backend error: {message}"),
            Self::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl core::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Allowed and denied counts per key, and when the denials happened: what
/// a limit would have done to a stream of traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    keys: BTreeMap<String, (u64, u64)>,
    timeline: Timeline,
}

impl Summary {
    /// Counts one decision for `key` (not placed in time: see
    /// [`record_at`](Self::record_at)).
    pub fn record(&mut self, key: &str, allowed: bool) {
        let counts = match self.keys.get_mut(key) {
            Some(counts) => counts,
            None => self.keys.entry(key.to_owned()).or_default(),
        };
        if allowed {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }

    /// Counts one decision for `key` made at `t_ns`, for the per-key table
    /// and the histogram of denials over time. Times are expected in
    /// non-decreasing order (as a replay's are); an earlier time counts in
    /// the first bucket.
    pub fn record_at(&mut self, key: &str, t_ns: u64, allowed: bool) {
        self.record(key, allowed);
        self.timeline.add(t_ns, !allowed);
    }

    /// `(allowed, denied)` for `key`.
    #[must_use]
    pub fn counts(&self, key: &str) -> (u64, u64) {
        self.keys.get(key).copied().unwrap_or_default()
    }

    /// Denials per fixed-width time bucket over the span of the recorded
    /// events, from the first event on: `(bucket width in ns, counts)`, or
    /// `None` when no event was recorded with [`record_at`](Self::record_at).
    /// The width is 1, 2 or 5 × 10^k ns, the smallest giving at most 10
    /// buckets (or finer ones when the span is shorter than that).
    #[must_use]
    pub fn denials_over_time(&self) -> Option<(u64, Vec<u64>)> {
        self.timeline.buckets(HISTOGRAM_BUCKETS)
    }
}

/// The number of buckets the histogram aims at (at most).
const HISTOGRAM_BUCKETS: u64 = 10;

/// The longest `#` bar of the histogram.
const BAR_WIDTH: u64 = 50;

/// Denials counted in fine bins of `width` ns (a power of ten) from the
/// first event's time; when the span outgrows 1000 bins, ten bins merge
/// into one. Memory is bounded whatever the length of the replay, and every
/// display width (1, 2 or 5 × 10^k, at least `width`) is a whole number of
/// bins, so the displayed counts are exact.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timeline {
    first_ns: Option<u64>,
    last_ns: u64,
    width: u64,
    bins: Vec<u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            first_ns: None,
            last_ns: 0,
            width: 1,
            bins: Vec::new(),
        }
    }
}

const FINE_BINS: u64 = 1000;

impl Timeline {
    fn add(&mut self, t_ns: u64, denied: bool) {
        let first = *self.first_ns.get_or_insert(t_ns);
        self.last_ns = self.last_ns.max(t_ns).max(first);
        let offset = t_ns.saturating_sub(first);
        while (self.last_ns - first) / self.width >= FINE_BINS {
            self.width *= 10;
            self.bins = self.bins.chunks(10).map(|c| c.iter().sum()).collect();
        }
        if denied {
            let i = usize::try_from(offset / self.width).unwrap_or(usize::MAX);
            if self.bins.len() <= i {
                self.bins.resize(i + 1, 0);
            }
            self.bins[i] += 1;
        }
    }

    fn buckets(&self, target: u64) -> Option<(u64, Vec<u64>)> {
        let first = self.first_ns?;
        let span = u128::from(self.last_ns - first) + 1;
        let wanted = span
            .div_ceil(u128::from(target))
            .max(u128::from(self.width));
        let width = nice_at_least(wanted);
        let n = usize::try_from(span.div_ceil(u128::from(width))).unwrap_or(usize::MAX);
        let mut out = vec![0; n];
        for (i, &count) in self.bins.iter().enumerate() {
            let start = i as u128 * u128::from(self.width);
            let b = usize::try_from(start / u128::from(width)).unwrap_or(usize::MAX);
            if let Some(slot) = out.get_mut(b) {
                *slot += count;
            }
        }
        Some((width, out))
    }
}

/// The smallest of 1, 2, 5 × 10^k at least `ns` (saturating at u64::MAX).
fn nice_at_least(ns: u128) -> u64 {
    let mut decade: u128 = 1;
    loop {
        for m in [1, 2, 5] {
            if m * decade >= ns {
                return u64::try_from(m * decade).unwrap_or(u64::MAX);
            }
        }
        decade *= 10;
    }
}

/// A duration of whole nanoseconds in the unit that `width` is a whole
/// number of: `200 ms`, `5 s`, `10 us`.
fn in_unit_of(ns: u64, width: u64) -> String {
    let (unit, name) = match width {
        w if w >= 1_000_000_000 => (1_000_000_000, "s"),
        w if w >= 1_000_000 => (1_000_000, "ms"),
        w if w >= 1_000 => (1_000, "us"),
        _ => (1, "ns"),
    };
    format!("{} {name}", ns / unit)
}

impl fmt::Display for Summary {
    /// A text table: one row per key in key order, then the totals; then,
    /// when events were placed in time, a histogram of the denials over
    /// time (one line per bucket: its start after the first event, the
    /// count, and a bar of `#`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.keys.keys().map(|k| k.len()).max().unwrap_or(0).max(5);
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  {:>8}",
            "key", "allowed", "denied", "denied%"
        )?;
        let (mut allowed, mut denied) = (0, 0);
        let row = |f: &mut fmt::Formatter<'_>, key: &str, a: u64, d: u64| {
            let pct = if a + d == 0 {
                0.0
            } else {
                100.0 * d as f64 / (a + d) as f64
            };
            writeln!(f, "{key:<width$}  {a:>10}  {d:>10}  {pct:>7.1}%")
        };
        for (key, &(a, d)) in &self.keys {
            row(f, key, a, d)?;
            allowed += a;
            denied += d;
        }
        row(f, "total", allowed, denied)?;
        if let Some((bucket, counts)) = self.denials_over_time() {
            let max = counts.iter().copied().max().unwrap_or(0);
            let per_hash = max.div_ceil(BAR_WIDTH).max(1);
            writeln!(f)?;
            writeln!(
                f,
                "denials over time ({} buckets from the first event; # = {per_hash} denial{})",
                in_unit_of(bucket, bucket),
                if per_hash == 1 { "" } else { "s, rounded up" }
            )?;
            let labels: Vec<String> = (0..counts.len() as u64)
                .map(|i| format!("+{}", in_unit_of(i.saturating_mul(bucket), bucket)))
                .collect();
            let label_width = labels.iter().map(String::len).max().unwrap_or(0);
            let count_width = max.to_string().len();
            for (label, &count) in labels.iter().zip(&counts) {
                let bar = "#".repeat(usize::try_from(count.div_ceil(per_hash)).unwrap_or(0));
                let line = format!("{label:>label_width$}  {count:>count_width$}  {bar}");
                writeln!(f, "{}", line.trim_end())?;
            }
        }
        Ok(())
    }
}

/// Answers one event with the backend, as an output line (without newline).
pub(crate) fn answer<B: Backend>(
    backend: &mut B,
    event: &Event,
) -> Result<(String, bool), B::Error> {
    Ok(match event.op {
        Op::Check => match backend.check(&event.key, event.t_ns, event.cost)? {
            Ok(decision) => (render_check(&decision), decision.allowed),
            Err(_) => {
                // Can never succeed: report the unchanged state, which a
                // cost of zero reads without writing.
                let mut view = match backend.check(&event.key, event.t_ns, 0)? {
                    Ok(view) => view,
                    Err(_) => unreachable!("a cost of zero never exceeds the capacity"),
                };
                view.allowed = false;
                view.retry_after = None;
                (render_check(&view), false)
            }
        },
        Op::Reserve => {
            match backend.reserve(&event.key, event.t_ns, event.cost, event.max_wait_ns)? {
                Ok(reservation) => (render_reserve(&reservation), reservation.is_admitted()),
                Err(_) => (
                    r#"{"allowed": false, "retry_after_ns": null}"#.to_owned(),
                    false,
                ),
            }
        }
    })
}

/// Replays every line of `input` through `backend`, writing one line per
/// event to `output`, and counting decisions in `summary` when given.
///
/// Stops at the first malformed line, backwards time or backend failure,
/// with an error naming the line; the lines before it have been written.
pub fn replay<B: Backend>(
    backend: &mut B,
    input: impl BufRead,
    mut output: impl Write,
    mut summary: Option<&mut Summary>,
) -> Result<(), ReplayError> {
    let mut previous_ns = 0;
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line?;
        let event = parse_event(&line).map_err(|message| ReplayError::Malformed {
            line: line_no,
            message,
        })?;
        if event.t_ns < previous_ns {
            return Err(ReplayError::TimeWentBackwards {
                line: line_no,
                previous_ns,
                t_ns: event.t_ns,
            });
        }
        previous_ns = event.t_ns;
        let (text, allowed) = answer(backend, &event).map_err(|e| ReplayError::Backend {
            line: line_no,
            message: e.to_string(),
        })?;
        writeln!(output, "{text}")?;
        if let Some(summary) = summary.as_deref_mut() {
            summary.record_at(&event.key, event.t_ns, allowed);
        }
    }
    output.flush()?;
    Ok(())
}

#[cfg(test)]
mod histogram_tests {
    use super::*;

    #[test]
    fn buckets_are_exact_and_bounded() {
        let mut s = Summary::default();
        // Denials every 100 ms over 10 s: 100 events, 10 buckets of 1 s.
        for i in 0..100u64 {
            s.record_at("k", i * 100_000_000, false);
        }
        s.record_at("k", 10_000_000_000, true);
        let (width, counts) = s.denials_over_time().unwrap();
        assert_eq!(width, 2_000_000_000);
        assert_eq!(counts, vec![20, 20, 20, 20, 20, 0]);
        assert!(s.timeline.bins.len() <= FINE_BINS as usize);
        // A long replay stays in bounded memory.
        s.record_at("k", u64::MAX, false);
        assert!(s.timeline.bins.len() <= FINE_BINS as usize);
        let (_, counts) = s.denials_over_time().unwrap();
        assert_eq!(counts.iter().sum::<u64>(), 101);
        assert_eq!(nice_at_least(3), 5);
        assert_eq!(nice_at_least(11), 20);
        assert_eq!(nice_at_least(1), 1);
    }

    #[test]
    fn replay_summary_places_denials_in_time() {
        use ratelimit_core::{Quota, Rate, TokenBucket};
        // The CLI's `summary_counts_per_key` input, on the reference model.
        let mut input = String::new();
        for i in 0..20u64 {
            for key in ["alice", "bob"] {
                if key == "bob" && i % 4 != 0 {
                    continue;
                }
                input += &format!(
                    "{{\"t_ns\": {}, \"key\": \"{key}\", \"op\": \"check\"}}\n",
                    i * 100_000_000
                );
            }
        }
        let mut model = crate::Model::new(TokenBucket::new(
            Quota::new(3, Rate::per_second(2)).unwrap(),
        ));
        let mut summary = Summary::default();
        replay(&mut model, input.as_bytes(), io::sink(), Some(&mut summary)).unwrap();
        assert_eq!(
            summary.denials_over_time(),
            Some((200_000_000, vec![0, 1, 1, 2, 2, 1, 2, 1, 2, 2]))
        );
        let text = summary.to_string();
        let histogram = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            histogram,
            "denials over time (200 ms buckets from the first event; # = 1 denial)\n\
             \x20  +0 ms  0\n\
             \x20+200 ms  1  #\n\
             \x20+400 ms  1  #\n\
             \x20+600 ms  2  ##\n\
             \x20+800 ms  2  ##\n\
             +1000 ms  1  #\n\
             +1200 ms  2  ##\n\
             +1400 ms  1  #\n\
             +1600 ms  2  ##\n\
             +1800 ms  2  ##\n"
        );
    }

    #[test]
    fn no_events_in_time_no_histogram() {
        let mut s = Summary::default();
        s.record("k", false);
        assert_eq!(s.denials_over_time(), None);
        assert!(!s.to_string().contains("denials over time"));
        // One event: one bucket of 1 ns.
        s.record_at("k", 5, false);
        assert_eq!(s.denials_over_time(), Some((1, vec![1])));
    }
}
