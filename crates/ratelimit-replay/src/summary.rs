//! [`Summary`]: what a limit would have done to a stream of traffic, per
//! key (allowed and denied counts) and over time (a histogram of the
//! denials), printed as a text table for a person.
//!
//! Memory: each distinct key is one record in one arena (its two counts
//! and its length, 24 bytes, then its bytes) and one 8-byte offset in a
//! hash table; printing sorts one more offset per key. Measured on 10 M
//! distinct 11-byte keys: 57 bytes a key at the peak, spare room of the
//! arena and the table included (a `BTreeMap` of `String`s took 109). The
//! histogram is bounded whatever the length of the replay.

use core::fmt;
use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::text::{printable, printable_width};

/// Allowed and denied counts per key, and when the denials happened: what
/// a limit would have done to a stream of traffic.
#[derive(Clone, Default)]
pub struct Summary {
    keys: KeyCounts,
    timeline: Timeline,
}

impl Summary {
    /// Counts one decision for `key` (not placed in time: see
    /// [`record_at`](Self::record_at)).
    pub fn record(&mut self, key: &str, allowed: bool) {
        self.keys.count(key, allowed);
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
        self.keys
            .find(key)
            .map_or((0, 0), |at| self.keys.counts(at))
    }

    /// The number of distinct keys counted.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.keys.table.len()
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

    /// Every key's record, in key order (byte-wise, as `str` compares).
    fn sorted(&self) -> Vec<usize> {
        // The arena holds the records back to back in the order the keys
        // first came: walk it (sequential reads, and an order the sort
        // finishes fast when keys came sorted), then sort.
        let mut rows = Vec::with_capacity(self.key_count());
        let mut at = 0;
        while at < self.keys.arena.len() {
            rows.push(at);
            at += KEY + self.keys.key_bytes(at).len();
        }
        rows.sort_unstable_by(|&a, &b| self.keys.key_bytes(a).cmp(self.keys.key_bytes(b)));
        rows
    }
}

impl PartialEq for Summary {
    fn eq(&self, other: &Self) -> bool {
        self.timeline == other.timeline
            && self.key_count() == other.key_count()
            && self.keys.table.iter().all(|&at| {
                other
                    .keys
                    .find(self.keys.key(at))
                    .is_some_and(|theirs| other.keys.counts(theirs) == self.keys.counts(at))
            })
    }
}

impl Eq for Summary {}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary")
            .field("keys", &self.key_count())
            .field("timeline", &self.timeline)
            .finish_non_exhaustive()
    }
}

/// Where a record's fields lie, from its start in the arena: the allowed
/// count, the denied count (both `u64`), the key's length in bytes
/// (`u64`), then the key.
const ALLOWED: usize = 0;
const DENIED: usize = 8;
const LEN: usize = 16;
const KEY: usize = 24;

/// Counts per key: one record per key in `arena`, and a table of the
/// records' offsets found by hashing the key.
#[derive(Clone, Default)]
struct KeyCounts {
    arena: Vec<u8>,
    table: HashTable<usize>,
    hasher: DefaultHashBuilder,
    /// The widest key as printed (escaped), up to the key column's cap:
    /// kept as keys arrive, so printing need not read every key twice.
    widest: usize,
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The key bytes of the record at `at`.
fn key_bytes(arena: &[u8], at: usize) -> &[u8] {
    // A length that does not fit `usize` cannot have been stored.
    let len = usize::try_from(read_u64(arena, at + LEN)).unwrap_or(usize::MAX);
    &arena[at + KEY..at + KEY + len]
}

impl KeyCounts {
    fn key_bytes(&self, at: usize) -> &[u8] {
        key_bytes(&self.arena, at)
    }

    /// The key of the record at `at` (stored from a `&str`, so valid UTF-8).
    fn key(&self, at: usize) -> &str {
        core::str::from_utf8(self.key_bytes(at)).unwrap_or("\u{fffd}")
    }

    fn counts(&self, at: usize) -> (u64, u64) {
        (
            read_u64(&self.arena, at + ALLOWED),
            read_u64(&self.arena, at + DENIED),
        )
    }

    fn find(&self, key: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(key.as_bytes());
        self.table
            .find(hash, |&at| key_bytes(&self.arena, at) == key.as_bytes())
            .copied()
    }

    /// Adds one decision to `key`'s record, creating it if need be.
    fn count(&mut self, key: &str, allowed: bool) {
        let Self {
            arena,
            table,
            hasher,
            widest,
        } = self;
        let hash = hasher.hash_one(key.as_bytes());
        let entry = table.entry(
            hash,
            |&at| key_bytes(arena, at) == key.as_bytes(),
            |&at| hasher.hash_one(key_bytes(arena, at)),
        );
        let at = match entry {
            hashbrown::hash_table::Entry::Occupied(found) => *found.get(),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let at = arena.len();
                arena.extend_from_slice(&[0; KEY]);
                arena[at + LEN..at + KEY].copy_from_slice(&(key.len() as u64).to_le_bytes());
                arena.extend_from_slice(key.as_bytes());
                vacant.insert(at);
                if *widest < KEY_COLUMN_MAX {
                    *widest = (*widest).max(printable_width(key));
                }
                at
            }
        };
        let field = at + if allowed { ALLOWED } else { DENIED };
        let n = read_u64(arena, field).saturating_add(1);
        arena[field..field + 8].copy_from_slice(&n.to_le_bytes());
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

/// The widest the key column is padded to; longer keys overflow it.
const KEY_COLUMN_MAX: usize = 48;

impl fmt::Display for Summary {
    /// A text table: one row per key in key order (keys escaped with
    /// [`printable`](crate::printable), so that no key can start a line or
    /// move the cursor), a rule, then the totals; then, when events were
    /// placed in time, a histogram of the denials over time (one line per
    /// bucket: its start after the first event, the count, and a bar of
    /// `#`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.sorted();
        let width = self.keys.widest.clamp(5, KEY_COLUMN_MAX);
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>10}  {:>8}",
            "key", "allowed", "denied", "denied%"
        )?;
        let (mut allowed, mut denied) = (0u64, 0u64);
        let row = |f: &mut fmt::Formatter<'_>, key: &str, a: u64, d: u64| {
            let pct = if a + d == 0 {
                0.0
            } else {
                100.0 * d as f64 / (a + d) as f64
            };
            writeln!(f, "{key:<width$}  {a:>10}  {d:>10}  {pct:>7.1}%")
        };
        for &at in &rows {
            let (a, d) = self.keys.counts(at);
            row(f, &printable(self.keys.key(at)), a, d)?;
            allowed = allowed.saturating_add(a);
            denied = denied.saturating_add(d);
        }
        writeln!(f, "{}", "-".repeat(width + 34))?;
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::replay;

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
