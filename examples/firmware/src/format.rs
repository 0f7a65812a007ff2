//! The compact binary form of the conformance scenarios that `build.rs`
//! writes and the firmware reads: about 10 bytes per event (640 KB for the
//! 63 398 events of the bucket and window files, against 15 MB of JSON),
//! decoded in place from flash with no allocation.
//!
//! All integers are unsigned LEB128 varints unless marked `u8`.
//!
//! ```text
//! blob     := "RLC1" part:u8 parts:u8 planted:u8 files:u8 (len:u8 name)*files
//!             scenario* 0xFF
//! scenario := file:u8 id algorithm:u8 capacity param events event*events
//! param    := rate_len:u8 rate_text     (algorithm 0, 1: the buckets)
//!           | window_ns                 (algorithm 2, 3: the windows)
//! event    := flags:u8 [dt] cost [max_wait_ns] answer
//! answer   := remaining [retry_after_ns] reset_after_ns   (check)
//!           | wait_ns                                     (reserve, admitted)
//!           | [retry_after_ns]                            (reserve, rejected)
//! ```
//!
//! `algorithm` is 0 token bucket, 1 leaky bucket, 2 fixed window, 3
//! sliding window; the rate is the scenario's decimal text, parsed on the
//! target by `Rate::from_str` as the CLI parses `--rate`. `dt` is the time
//! since the scenario's previous event (since 0 for the first), present
//! only when [`ADVANCE`] is set. The flags hold the operation, the expected
//! `allowed`, which optional fields follow, and the key's index (keys are
//! numbered in order of first appearance within a scenario, at most 8).
//! `planted` is 1 when the build corrupted the part's first expected
//! answer on purpose (`RATELIMIT_PLANT_MISMATCH`).

use ratelimit_embedded::AlgorithmKind;

use crate::layout::{ADVANCE, ALLOWED, END, KEY_SHIFT, MAGIC, MAX_WAIT, RESERVE, RETRY_AFTER};

/// Why the blob cannot be read: a build.rs bug, never a scenario's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// A cursor over the blob.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or(Malformed("unexpected end of data"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("varint longer than 64 bits"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.bytes.len() {
            return Err(Malformed("unexpected end of data"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn text(&mut self) -> Result<&'a str, Malformed> {
        let len = usize::from(self.byte()?);
        core::str::from_utf8(self.take(len)?).map_err(|_| Malformed("text is not UTF-8"))
    }
}

/// The blob's header: which part of the scenarios it holds, and the names
/// of the files they come from.
#[derive(Debug, Clone)]
pub(crate) struct Blob<'a> {
    /// This part's number, from 1.
    pub(crate) part: u8,
    /// How many parts the scenarios were split into.
    pub(crate) parts: u8,
    /// Whether the build planted a mismatch.
    pub(crate) planted: bool,
    names: [&'a str; 8],
    files: u8,
    scenarios: Reader<'a>,
}

impl<'a> Blob<'a> {
    /// Reads the header.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader { bytes };
        if r.take(4)? != MAGIC {
            return Err(Malformed("not a scenario blob (bad magic)"));
        }
        let part = r.byte()?;
        let parts = r.byte()?;
        let planted = r.byte()? != 0;
        let files = r.byte()?;
        if usize::from(files) > 8 {
            return Err(Malformed("more than 8 files"));
        }
        let mut names = [""; 8];
        for name in names.iter_mut().take(usize::from(files)) {
            *name = r.text()?;
        }
        Ok(Self {
            part,
            parts,
            planted,
            names,
            files,
            scenarios: r,
        })
    }

    /// The bytes not read yet.
    #[cfg(test)]
    pub(crate) fn remaining_bytes(&self) -> usize {
        self.scenarios.bytes.len()
    }

    /// The next scenario, `None` after the last.
    pub(crate) fn next_scenario(&mut self) -> Result<Option<Scenario<'a>>, Malformed> {
        let r = &mut self.scenarios;
        let file = r.byte()?;
        if file == END {
            return Ok(None);
        }
        if file >= self.files {
            return Err(Malformed("file index out of range"));
        }
        let id = r.varint()?;
        let algorithm = match r.byte()? {
            0 => AlgorithmKind::TokenBucket,
            1 => AlgorithmKind::LeakyBucket,
            2 => AlgorithmKind::FixedWindow,
            3 => AlgorithmKind::SlidingWindow,
            _ => return Err(Malformed("unknown algorithm")),
        };
        let capacity = r.varint()?;
        let param = if algorithm.is_bucket() {
            Param::Rate(r.text()?)
        } else {
            Param::WindowNs(r.varint()?)
        };
        let events = r.varint()?;
        Ok(Some(Scenario {
            file: self.names[usize::from(file)],
            id,
            algorithm,
            capacity,
            param,
            events,
        }))
    }

    /// The next event of the current scenario, with the time of the
    /// previous one (0 for the first).
    pub(crate) fn next_event(&mut self, previous_ns: u64) -> Result<Event, Malformed> {
        let r = &mut self.scenarios;
        let flags = r.byte()?;
        let dt = if flags & ADVANCE != 0 { r.varint()? } else { 0 };
        let t_ns = previous_ns
            .checked_add(dt)
            .ok_or(Malformed("time beyond u64"))?;
        let key = usize::from((flags >> KEY_SHIFT) & 0x7);
        let cost = r.varint()?;
        let allowed = flags & ALLOWED != 0;
        let retry_after = flags & RETRY_AFTER != 0;
        let (op, expected) = if flags & RESERVE != 0 {
            let max_wait_ns = if flags & MAX_WAIT != 0 {
                Some(r.varint()?)
            } else {
                None
            };
            let expected = if allowed {
                Outcome::Admitted {
                    wait_ns: r.varint()?,
                }
            } else {
                Outcome::Rejected {
                    retry_after_ns: if retry_after { Some(r.varint()?) } else { None },
                }
            };
            (Op::Reserve { max_wait_ns }, expected)
        } else {
            let remaining = r.varint()?;
            let retry_after_ns = if retry_after { Some(r.varint()?) } else { None };
            let reset_after_ns = r.varint()?;
            (
                Op::Check,
                Outcome::Checked {
                    allowed,
                    remaining,
                    retry_after_ns,
                    reset_after_ns,
                },
            )
        };
        Ok(Event {
            t_ns,
            key,
            cost,
            op,
            expected,
        })
    }
}

/// A scenario's limiter parameters; its events follow in the blob.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario<'a> {
    /// The conformance file it comes from.
    pub(crate) file: &'a str,
    /// Its id within the file.
    pub(crate) id: u64,
    pub(crate) algorithm: AlgorithmKind,
    /// `C`, or a window's `L`.
    pub(crate) capacity: u64,
    pub(crate) param: Param<'a>,
    /// How many events follow.
    pub(crate) events: u64,
}

/// A bucket's rate or a window's length.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// Units per second, as decimal text (`2`, `0.5`, `2500000.0`).
    Rate(&'a str),
    /// The window `W` in nanoseconds.
    WindowNs(u64),
}

/// One event and the answer the scenario expects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) t_ns: u64,
    /// The key's index within the scenario (below [`MAX_KEYS`](crate::layout::MAX_KEYS)).
    pub(crate) key: usize,
    pub(crate) cost: u64,
    pub(crate) op: Op,
    pub(crate) expected: Outcome,
}

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Check,
    Reserve { max_wait_ns: Option<u64> },
}

/// An answer, as the replay format prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `{"allowed", "remaining", "retry_after_ns", "reset_after_ns"}`
    Checked {
        allowed: bool,
        remaining: u64,
        retry_after_ns: Option<u64>,
        reset_after_ns: u64,
    },
    /// `{"allowed": true, "wait_ns"}`
    Admitted { wait_ns: u64 },
    /// `{"allowed": false, "retry_after_ns"}`
    Rejected { retry_after_ns: Option<u64> },
}
