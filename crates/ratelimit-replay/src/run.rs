//! The replay loop: events in, one decision line out per event, and an
//! optional per-key summary.
//!
//! Input is read as bytes, one line at a time and never more than
//! [`MAX_LINE_BYTES`] of it, so that every input error (a line too long,
//! not UTF-8, empty or not an event) names its line, and a hostile input
//! cannot make the replay hold more than one bounded line in memory.

use core::fmt;
use std::io::{self, BufRead, Write};

use crate::backend::Backend;
use crate::event::{Event, Op, Request, parse_event};
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
    /// A valid event that this replay cannot run yet (a `reconfigure`, or
    /// a key's own quota): refused rather than answered with the wrong
    /// quota.
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
    /// The event is valid but cannot be run here.
    Unsupported(&'static str),
}

/// Answers one event with the backend: its output line (without newline),
/// whether it was allowed, and the request it answered.
pub(crate) fn answer<'e, B: Backend>(
    backend: &mut B,
    event: &'e Event,
) -> Result<(String, bool, &'e Request), Unanswered<B::Error>> {
    let request = match event {
        Event::Request(r) if r.quota.is_none() => r,
        Event::Request(_) => {
            return Err(Unanswered::Unsupported(
                "a key's own quota (capacity and rate on a check or reserve) is not supported yet",
            ));
        }
        Event::Reconfigure(_) => {
            return Err(Unanswered::Unsupported(
                "reconfigure events are not supported yet",
            ));
        }
    };
    let (text, allowed) = match request.op {
        Op::Check => match backend
            .check(&request.key, request.t_ns, request.cost)
            .map_err(Unanswered::Backend)?
        {
            Ok(decision) => (render_check(&decision), decision.allowed),
            Err(_) => {
                // Can never succeed: report the unchanged state, which a
                // cost of zero reads without writing.
                let mut view = match backend
                    .check(&request.key, request.t_ns, 0)
                    .map_err(Unanswered::Backend)?
                {
                    Ok(view) => view,
                    Err(_) => unreachable!("a cost of zero never exceeds the capacity"),
                };
                view.allowed = false;
                view.retry_after = None;
                (render_check(&view), false)
            }
        },
        Op::Reserve => match backend
            .reserve(
                &request.key,
                request.t_ns,
                request.cost,
                request.max_wait_ns,
            )
            .map_err(Unanswered::Backend)?
        {
            Ok(reservation) => (render_reserve(&reservation), reservation.is_admitted()),
            Err(_) => (
                r#"{"allowed": false, "retry_after_ns": null}"#.to_owned(),
                false,
            ),
        },
    };
    Ok((text, allowed, request))
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
        let (text, allowed, request) = answer(backend, &event).map_err(|e| match e {
            Unanswered::Backend(e) => ReplayError::Backend {
                line,
                message: printable(&e.to_string()).into_owned(),
            },
            Unanswered::Unsupported(message) => ReplayError::Unsupported {
                line,
                message: message.to_owned(),
            },
        })?;
        writeln!(output, "{text}")?;
        if let Some(summary) = summary.as_deref_mut() {
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
    fn reconfigure_and_own_quotas_are_refused_until_supported() {
        let (out, result) = run(format!(
            "{OK}{{\"t_ns\": 5, \"op\": \"reconfigure\", \"capacity\": 3, \"rate\": 1}}\n"
        )
        .as_bytes());
        assert_eq!(out.lines().count(), 1);
        assert_eq!(
            result.unwrap_err().to_string(),
            "line 2: reconfigure events are not supported yet"
        );
        let (_, result) = run(
            b"{\"t_ns\": 5, \"key\": \"a\", \"op\": \"check\", \"capacity\": 3, \"rate\": 1}\n",
        );
        assert!(matches!(
            result,
            Err(ReplayError::Unsupported { line: 1, .. })
        ));
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
