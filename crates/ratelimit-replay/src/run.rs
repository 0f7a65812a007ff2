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

/// Allowed and denied counts per key: what a limit would have done to a
/// stream of traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    keys: BTreeMap<String, (u64, u64)>,
}

impl Summary {
    /// Counts one decision for `key`.
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

    /// `(allowed, denied)` for `key`.
    #[must_use]
    pub fn counts(&self, key: &str) -> (u64, u64) {
        self.keys.get(key).copied().unwrap_or_default()
    }
}

impl fmt::Display for Summary {
    /// A text table: one row per key in key order, then the totals.
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
        row(f, "total", allowed, denied)
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
                Ok(reservation) => (render_reserve(&reservation), reservation.allowed),
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
            summary.record(&event.key, allowed);
        }
    }
    output.flush()?;
    Ok(())
}
