//! The replay loop: events in, one decision line out per event, and an
//! optional per-key summary.
//!
//! Input is read as bytes, one line at a time and never more than
//! [`MAX_LINE_BYTES`] of it, so that every input error (a line too long,
//! not UTF-8, empty or not an event) names its line, and a hostile input
//! cannot make the replay hold more than one bounded line in memory.

use core::fmt;
use std::io::{self, BufRead, Write};

use std::collections::HashMap;

use ratelimit_core::Quota;

use crate::backend::{Backend, NeedsBucket, NotShaping};
use crate::event::{Event, Op, QuotaSpec, Request, parse_event};
use crate::output::{render_check, render_reserve};
use crate::summary::Summary;
use crate::text::printable;

/// The longest input line a replay reads, in bytes (1 MiB), without its
/// line ending. Events are a few dozen bytes; the cap leaves room for keys
/// of hundreds of kilobytes and stops a runaway line (a file without line
/// breaks, a binary read by mistake) before it fills memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a replay stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// A line is not a valid event: not UTF-8, empty, not JSON, or not an
    /// event of the format.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it (input text in it is shown with
        /// [`printable`](crate::printable)).
        message: String,
    },
    /// A line is longer than [`MAX_LINE_BYTES`].
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// The limit it exceeds, in bytes.
        limit: usize,
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
    /// A valid event that this replay cannot run: one its algorithm does
    /// not have (a `reserve`, a `reconfigure` or a key's own quota under a
    /// window algorithm), or one its backend does not support yet; refused
    /// rather than answered wrongly.
    Unsupported {
        /// 1-based line number.
        line: usize,
        /// What is not supported.
        message: String,
    },
    /// The backend failed on this line's event.
    Backend {
        /// 1-based line number.
        line: usize,
        /// The backend's error.
        message: String,
    },
    /// Reading this line from the input failed.
    Read {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing the output failed.
    Io(io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line, message } => {
                write!(f, "line {line}: malformed event: {message}")
            }
            Self::LineTooLong { line, limit } => write!(
                f,
                "line {line}: longer than the limit of {limit} bytes (is the input JSON Lines?)"
            ),
            Self::TimeWentBackwards {
                line,
                previous_ns,
                t_ns,
            } => write!(
                f,
                "line {line}: t_ns {t_ns} is before the previous event's {previous_ns}; time must never decrease"
            ),
            Self::Unsupported { line, message } => write!(f, "line {line}: {message}"),
            Self::Backend { line, message } => write!(f, "line {line}: backend error: {message}"),
            Self::Read { line, source } => {
                write!(f, "line {line}: cannot read the input: {source}")
            }
            Self::Io(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl core::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io(e) | Self::Read { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Why an event got no answer.
pub(crate) enum Unanswered<E> {
    /// The backend failed.
    Backend(E),
    /// The event is valid but cannot be run here: under this algorithm, or
    /// by this backend.
    Unsupported(String),
}

/// The quotas that keys were given by their own request events: a key
/// keeps its own quota from the event that gives it on (docs/semantics.md,
/// "Changing a quota while it runs"), and the backend is handed it with
/// each of the key's requests. Empty, and free, for a replay without such
/// events.
#[derive(Debug, Default)]
pub(crate) struct OwnQuotas(HashMap<String, Quota>);

/// What an answered event was: a request (allowed or not), or a change of
/// the limiter's quota.
pub(crate) enum Answered<'e> {
    /// A `check` or `reserve`, and whether it was allowed (admitted).
    Request(&'e Request, bool),
    /// A `reconfigure`.
    Reconfigured,
}

/// The output line of a `reconfigure` event.
const RECONFIGURED: &str = r#"{"reconfigured": true}"#;

/// Answers one event with the backend: its output line (without newline)
/// and what it was. `own` holds the keys' own quotas so far; a request
/// that carries one updates it.
pub(crate) fn answer<'e, B: Backend>(
    backend: &mut B,
    own: &mut OwnQuotas,
    event: &'e Event,
) -> Result<(String, Answered<'e>), Unanswered<B::Error>> {
    let kind = backend.algorithm();
    let windowed = kind.filter(|k| !k.is_bucket());
    let request = match event {
        Event::Request(r) => r,
        Event::Reconfigure(r) => {
            if let Some(kind) = windowed {
                return Err(Unanswered::Unsupported(format!(
                    "a reconfigure event: {}",
                    NeedsBucket(kind)
                )));
            }
            let quota = spec_quota(&r.quota)?;
            if !backend
                .reconfigure(r.t_ns, &quota, r.strategy)
                .map_err(Unanswered::Backend)?
            {
                return Err(Unanswered::Unsupported(
                    "reconfigure events are not supported by this backend yet".to_owned(),
                ));
            }
            return Ok((RECONFIGURED.to_owned(), Answered::Reconfigured));
        }
    };
    if let Some(spec) = &request.quota {
        if let Some(kind) = windowed {
            return Err(Unanswered::Unsupported(format!(
                "a key's own quota (capacity and rate on a {}): {}",
                op_name(request.op),
                NeedsBucket(kind)
            )));
        }
        let quota = spec_quota(spec)?;
        own.0.insert(request.key.clone(), quota);
    }
    if request.op == Op::Reserve {
        if let Some(kind) = windowed {
            return Err(Unanswered::Unsupported(NotShaping(kind).to_string()));
        }
    }
    let quota = own.0.get(&request.key).copied();
    let no_own_quotas = || {
        Unanswered::Unsupported(
            "a key's own quota (capacity and rate on a check or reserve) is not supported by this backend yet"
                .to_owned(),
        )
    };
    let (text, allowed) = match request.op {
        Op::Check => {
            let mut check = |cost| match &quota {
                None => backend
                    .check(&request.key, request.t_ns, cost)
                    .map_err(Unanswered::Backend),
                Some(q) => backend
                    .check_with_quota(&request.key, request.t_ns, cost, q)
                    .map_err(Unanswered::Backend)?
                    .ok_or_else(no_own_quotas),
            };
            match check(request.cost)? {
                Ok(decision) => (render_check(&decision), decision.allowed),
                Err(_) => {
                    // Can never succeed: report the unchanged state, which
                    // a cost of zero reads without writing.
                    let Ok(mut view) = check(0)? else {
                        unreachable!("a cost of zero never exceeds the capacity")
                    };
                    view.allowed = false;
                    view.retry_after = None;
                    (render_check(&view), false)
                }
            }
        }
        Op::Reserve => {
            let reserved = match &quota {
                None => backend
                    .reserve(
                        &request.key,
                        request.t_ns,
                        request.cost,
                        request.max_wait_ns,
                    )
                    .map_err(Unanswered::Backend)?,
                Some(q) => backend
                    .reserve_with_quota(
                        &request.key,
                        request.t_ns,
                        request.cost,
                        request.max_wait_ns,
                        q,
                    )
                    .map_err(Unanswered::Backend)?
                    .ok_or_else(no_own_quotas)?,
            };
            match reserved {
                Ok(reservation) => (render_reserve(&reservation), reservation.is_admitted()),
                Err(_) => (
                    r#"{"allowed": false, "retry_after_ns": null}"#.to_owned(),
                    false,
                ),
            }
        }
    };
    Ok((text, Answered::Request(request, allowed)))
}

/// The quota of an event's capacity and rate (checked when the line was
/// parsed, so this cannot fail on a parsed event).
fn spec_quota<E>(spec: &QuotaSpec) -> Result<Quota, Unanswered<E>> {
    spec.quota().map_err(|e| {
        Unanswered::Unsupported(format!(
            "invalid quota (capacity {}, rate {}): {e}",
            spec.capacity, spec.rate
        ))
    })
}

/// The name of a request's op in the format.
fn op_name(op: Op) -> &'static str {
    match op {
        Op::Check => "check",
        Op::Reserve => "reserve",
    }
}

/// What [`read_line`] found.
enum Line {
    /// A line is in the buffer (without its `\n`).
    Read,
    /// The line exceeds the limit; the buffer holds its first bytes.
    TooLong,
    /// The input is over.
    End,
}

/// Reads the next line of `input` into `buf` (cleared first), without its
/// `\n`, holding at most `limit + 1` bytes of it.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    buf.clear();
    loop {
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Read
            });
        }
        let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let room = (limit + 1).saturating_sub(buf.len());
        let taken = chunk.len().min(room);
        buf.extend_from_slice(&chunk[..taken]);
        if buf.len() > limit {
            return Ok(Line::TooLong);
        }
        let used = chunk.len() + usize::from(newline);
        input.consume(used);
        if newline {
            return Ok(Line::Read);
        }
    }
}

/// The text of one line of input, or why it is not one.
fn line_text(bytes: &[u8]) -> Result<&str, String> {
    // A Windows line ending is a line ending.
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = core::str::from_utf8(bytes)
        .map_err(|e| format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1))?;
    if text.trim().is_empty() {
        return Err("empty line; every line must be one JSON event".to_owned());
    }
    Ok(text)
}

/// Replays every line of `input` through `backend`, writing one line per
/// event to `output`, and counting decisions in `summary` when given.
///
/// Stops at the first malformed, overlong or unsupported line, backwards
/// time or backend failure, with an error naming the line; the lines before
/// it have been written (and flushed).
pub fn replay<B: Backend>(
    backend: &mut B,
    mut input: impl BufRead,
    mut output: impl Write,
    mut summary: Option<&mut Summary>,
) -> Result<(), ReplayError> {
    let result = replay_lines(backend, &mut input, &mut output, &mut summary);
    let flushed = output.flush();
    result?;
    flushed?;
    Ok(())
}

fn replay_lines<B: Backend>(
    backend: &mut B,
    input: &mut impl BufRead,
    output: &mut impl Write,
    summary: &mut Option<&mut Summary>,
) -> Result<(), ReplayError> {
    let mut previous_ns = 0;
    let mut buf = Vec::new();
    let mut own = OwnQuotas::default();
    for line in 1.. {
        match read_line(input, &mut buf, MAX_LINE_BYTES)
            .map_err(|source| ReplayError::Read { line, source })?
        {
            Line::End => break,
            Line::TooLong => {
                return Err(ReplayError::LineTooLong {
                    line,
                    limit: MAX_LINE_BYTES,
                });
            }
            Line::Read => {}
        }
        let malformed = |message: String| ReplayError::Malformed {
            line,
            message: printable(&message).into_owned(),
        };
        let event = parse_event(line_text(&buf).map_err(malformed)?).map_err(malformed)?;
        let t_ns = event.t_ns();
        if t_ns < previous_ns {
            return Err(ReplayError::TimeWentBackwards {
                line,
                previous_ns,
                t_ns,
            });
        }
        previous_ns = t_ns;
        let (text, answered) = answer(backend, &mut own, &event).map_err(|e| match e {
            Unanswered::Backend(e) => ReplayError::Backend {
                line,
                message: printable(&e.to_string()).into_owned(),
            },
            Unanswered::Unsupported(message) => ReplayError::Unsupported { line, message },
        })?;
        writeln!(output, "{text}")?;
        if let (Some(summary), Answered::Request(request, allowed)) =
            (summary.as_deref_mut(), answered)
        {
            summary.record_at(&request.key, request.t_ns, allowed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ratelimit_core::{Quota, Rate, TokenBucket};

    use super::*;
    use crate::Model;

    fn model() -> Model<TokenBucket> {
        Model::new(TokenBucket::new(
            Quota::new(2, Rate::per_second(1)).unwrap(),
        ))
    }

    fn run(input: &[u8]) -> (String, Result<(), ReplayError>) {
        let mut out = Vec::new();
        let result = replay(&mut model(), input, &mut out, None);
        (String::from_utf8(out).unwrap(), result)
    }

    const OK: &str = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";

    #[test]
    fn every_input_error_names_its_line_once() {
        for (input, expected) in [
            (
                [OK.as_bytes(), b"\n", OK.as_bytes()].concat(),
                "line 2: malformed event: empty line; every line must be one JSON event",
            ),
            (
                [OK.as_bytes(), b"   \r\n"].concat(),
                "line 2: malformed event: empty line; every line must be one JSON event",
            ),
            (
                [
                    OK.as_bytes(),
                    OK.as_bytes(),
                    b"{\"t_ns\": 1, \"key\": \"\xff\"}\n",
                ]
                .concat(),
                "line 3: malformed event: not valid UTF-8 (byte 21 of the line)",
            ),
            (
                [OK.as_bytes(), b"{\"t_ns\": 1,\n"].concat(),
                "line 2: malformed event: EOF while parsing a value (column 11)",
            ),
        ] {
            let (out, result) = run(&input);
            let message = result.unwrap_err().to_string();
            assert_eq!(message, expected);
            let numbered = message
                .match_indices("line ")
                .filter(|(at, _)| message[at + 5..].starts_with(|c: char| c.is_ascii_digit()))
                .count();
            assert_eq!(numbered, 1, "one line number only: {message}");
            let line: usize = message[5..message.find(':').unwrap()].parse().unwrap();
            assert_eq!(
                out.lines().count(),
                line - 1,
                "the lines before the error are answered"
            );
        }
    }

    #[test]
    fn overlong_lines_stop_the_replay_without_reading_them_whole() {
        let long_key = "k".repeat(MAX_LINE_BYTES);
        let input =
            format!("{OK}{{\"t_ns\": 2, \"key\": \"{long_key}\", \"op\": \"check\"}}\n{OK}");
        let mut reader = io::BufReader::with_capacity(4096, input.as_bytes());
        let mut out = Vec::new();
        let err = replay(&mut model(), &mut reader, &mut out, None).unwrap_err();
        assert!(matches!(
            err,
            ReplayError::LineTooLong {
                line: 2,
                limit: MAX_LINE_BYTES
            }
        ));
        assert_eq!(
            err.to_string(),
            "line 2: longer than the limit of 1048576 bytes (is the input JSON Lines?)"
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        // A line of exactly the limit is read; one byte more is refused.
        let mut buf = Vec::new();
        let exact = [b'x'; 10];
        assert!(matches!(
            read_line(&mut &exact[..], &mut buf, 10).unwrap(),
            Line::Read
        ));
        assert_eq!(buf.len(), 10);
        assert!(matches!(
            read_line(&mut &exact[..], &mut buf, 9).unwrap(),
            Line::TooLong
        ));
        assert!(buf.len() <= 10);
    }

    #[test]
    fn a_key_of_64_kib_is_an_ordinary_key() {
        let key = "k".repeat(1 << 16);
        let input = format!("{{\"t_ns\": 2, \"key\": \"{key}\", \"op\": \"check\"}}\n");
        let mut summary = Summary::default();
        replay(
            &mut model(),
            input.as_bytes(),
            io::sink(),
            Some(&mut summary),
        )
        .unwrap();
        assert_eq!(summary.counts(&key), (1, 0));
        assert!(summary.to_string().contains(&key));
    }

    #[test]
    fn reconfigure_and_own_quotas_are_answered() {
        let (out, result) = run(concat!(
            "{\"t_ns\": 0, \"key\": \"a\", \"op\": \"check\", \"cost\": 2}\n",
            "{\"t_ns\": 0, \"op\": \"reconfigure\", \"capacity\": 4, \"rate\": 1}\n",
            "{\"t_ns\": 0, \"key\": \"a\", \"op\": \"check\", \"cost\": 0}\n",
            "{\"t_ns\": 0, \"key\": \"b\", \"op\": \"check\", \"capacity\": 1, \"rate\": 1}\n",
            "{\"t_ns\": 0, \"key\": \"b\", \"op\": \"check\"}\n",
        )
        .as_bytes());
        result.unwrap();
        // a keeps its 2 used, now of 4; b has a capacity of its own, 1,
        // which its next check (without a quota) still follows.
        assert_eq!(
            out,
            concat!(
                "{\"allowed\": true, \"remaining\": 0, \"retry_after_ns\": null, \"reset_after_ns\": 2000000000}\n",
                "{\"reconfigured\": true}\n",
                "{\"allowed\": true, \"remaining\": 2, \"retry_after_ns\": null, \"reset_after_ns\": 2000000000}\n",
                "{\"allowed\": true, \"remaining\": 0, \"retry_after_ns\": null, \"reset_after_ns\": 1000000000}\n",
                "{\"allowed\": false, \"remaining\": 0, \"retry_after_ns\": 1000000000, \"reset_after_ns\": 1000000000}\n",
            )
        );
    }

    /// A backend that runs requests but neither reconfiguration nor keys'
    /// own quotas (the trait's defaults), like a backend not yet taught them.
    struct Plain(Model<TokenBucket>);

    impl Backend for Plain {
        type Error = crate::Unsupported;

        fn check(
            &mut self,
            key: &str,
            now_ns: u64,
            cost: u64,
        ) -> Result<
            Result<ratelimit_core::Decision, ratelimit_core::InsufficientCapacity>,
            Self::Error,
        > {
            self.0.check(key, now_ns, cost)
        }

        fn reserve(
            &mut self,
            key: &str,
            now_ns: u64,
            cost: u64,
            max_wait_ns: Option<u64>,
        ) -> Result<
            Result<ratelimit_core::Reservation, ratelimit_core::InsufficientCapacity>,
            Self::Error,
        > {
            self.0.reserve(key, now_ns, cost, max_wait_ns)
        }
    }

    #[test]
    fn what_a_backend_or_an_algorithm_cannot_run_is_refused_naming_the_line() {
        let reconfigure = "{\"t_ns\": 5, \"op\": \"reconfigure\", \"capacity\": 3, \"rate\": 1}\n";
        let own =
            "{\"t_ns\": 5, \"key\": \"a\", \"op\": \"check\", \"capacity\": 3, \"rate\": 1}\n";
        let reserve = "{\"t_ns\": 5, \"key\": \"a\", \"op\": \"reserve\"}\n";
        let window =
            ratelimit_core::FixedWindow::new(2, core::time::Duration::from_secs(1)).unwrap();
        assert_eq!(
            refused(Plain(model()), reconfigure),
            "line 2: reconfigure events are not supported by this backend yet"
        );
        assert_eq!(
            refused(Plain(model()), own),
            "line 2: a key's own quota (capacity and rate on a check or reserve) is not supported by this backend yet"
        );
        assert_eq!(
            refused(Model::new(window), reserve),
            "line 2: reserve is not available under fixed-window: a window algorithm only polices (check); shaping needs token-bucket or leaky-bucket"
        );
        assert_eq!(
            refused(Model::new(window), reconfigure),
            "line 2: a reconfigure event: a quota of capacity and rate needs token-bucket or leaky-bucket; fixed-window takes a limit per window"
        );
        assert_eq!(
            refused(Model::new(window), own),
            "line 2: a key's own quota (capacity and rate on a check): a quota of capacity and rate needs token-bucket or leaky-bucket; fixed-window takes a limit per window"
        );
    }

    /// The error of replaying one good line, then `line`, on `backend`:
    /// refused as unsupported on line 2, after line 1 was answered.
    fn refused<B: Backend>(mut backend: B, line: &str) -> String {
        let mut out = Vec::new();
        let result = replay(
            &mut backend,
            format!("{OK}{line}").as_bytes(),
            &mut out,
            None,
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        match result {
            Err(e @ ReplayError::Unsupported { line: 2, .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_echoed_in_errors_is_escaped() {
        let (_, result) = run(b"{\"t_ns\": 1, \"key\": \"a\", \"op\": \"\\u001b[2J\\n\"}\n");
        let message = result.unwrap_err().to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.contains("\\u{1b}[2J"), "{message}");
    }

    #[test]
    fn last_line_without_newline_and_crlf_endings() {
        let (out, result) = run(b"{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\r\n{\"t_ns\": 2, \"key\": \"a\", \"op\": \"check\"}");
        result.unwrap();
        assert_eq!(out.lines().count(), 2);
        let (out, result) = run(b"");
        result.unwrap();
        assert_eq!(out, "");
    }
}
