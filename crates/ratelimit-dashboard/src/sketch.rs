//! [`SpaceSaving`]: the heavy hitters of a stream of keys in fixed memory
//! (Metwally, Agrawal and El Abbadi's Space-Saving algorithm).
//!
//! With capacity `m` after `n` offers (of weight 1):
//! - every key offered more than `n / m` times is monitored;
//! - a monitored key's `count` is an upper bound of its true count and
//!   `count − error` a lower bound (`error` is the count of the key it
//!   replaced);
//! - while no more than `m` distinct keys were offered, every count is
//!   exact (`error` 0).
//!
//! All memory is allocated when the sketch is made; an offer only compares
//! and copies.

use crate::key::KeySnap;

/// The state a key was last seen in: what its last decision said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LastState {
    /// Units left after the decision (tokens, or free queue slots).
    pub(crate) remaining: u64,
    /// The quota's limit.
    pub(crate) limit: u64,
    /// Milliseconds until the key is back to its initial state.
    pub(crate) reset_after_ms: u64,
    /// When (Unix seconds, as of the recorder's last tick).
    pub(crate) seen: u64,
}

/// A monitored key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) key: KeySnap,
    /// The estimated count: an upper bound of the true count.
    pub(crate) count: u64,
    /// The most by which `count` may exceed the true count.
    pub(crate) error: u64,
    pub(crate) state: LastState,
}

/// A Space-Saving sketch of fixed capacity.
pub(crate) struct SpaceSaving {
    /// The monitored keys' hashes, scanned first (contiguous, so the
    /// compiler can vectorise the scan).
    hashes: Box<[u64]>,
    /// The monitored keys' counts, scanned for the smallest on a miss
    /// (contiguous for the same reason); `entries[i].count` is kept equal.
    counts: Box<[u64]>,
    entries: Box<[Entry]>,
    len: usize,
    /// The total weight offered.
    total: u64,
}

impl SpaceSaving {
    /// An empty sketch of `capacity` keys (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let blank = Entry {
            key: KeySnap::from_bytes(b""),
            count: 0,
            error: 0,
            state: LastState::default(),
        };
        Self {
            hashes: vec![0; capacity].into_boxed_slice(),
            counts: vec![0; capacity].into_boxed_slice(),
            entries: vec![blank; capacity].into_boxed_slice(),
            len: 0,
            total: 0,
        }
    }

    /// Forgets every key, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.total = 0;
    }

    /// The capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Whether every slot is taken.
    fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// The smallest count monitored, 0 while a slot is free: the most a
    /// key that is not monitored can have been offered.
    pub(crate) fn floor(&self) -> u64 {
        if self.is_full() {
            self.counts.iter().copied().min().unwrap_or(0)
        } else {
            0
        }
    }

    /// Offers `key` with `weight`, last seen in `state`.
    #[inline]
    pub(crate) fn offer(&mut self, key: &KeySnap, weight: u64, state: LastState) {
        self.total += weight;
        let found = self.hashes[..self.len]
            .iter()
            .enumerate()
            .filter(|&(_, &h)| h == key.hash)
            .map(|(i, _)| i)
            .find(|&i| self.entries[i].key.same(key));
        if let Some(i) = found {
            let entry = &mut self.entries[i];
            entry.count += weight;
            entry.state = state;
            self.counts[i] = entry.count;
            return;
        }
        let (slot, floor) = if self.is_full() {
            // Replace the key with the smallest count: the newcomer may
            // have been offered up to that many times unseen.
            let mut slot = 0;
            for (i, &c) in self.counts.iter().enumerate() {
                if c < self.counts[slot] {
                    slot = i;
                }
            }
            (slot, self.counts[slot])
        } else {
            self.len += 1;
            (self.len - 1, 0)
        };
        self.hashes[slot] = key.hash;
        self.counts[slot] = floor + weight;
        self.entries[slot] = Entry {
            key: *key,
            count: floor + weight,
            error: floor,
            state,
        };
    }

    /// The monitored keys.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// The total weight offered since the last clear.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// The keys of two sketches of consecutive spans, merged: a key missing
/// from a full sketch may have been offered up to its floor there, which
/// is added to both its count and its error (so `count` stays an upper
/// bound and `count − error` a lower one). Sorted by count, highest first,
/// then by key; at most `n`.
pub(crate) fn merge(a: &SpaceSaving, b: &SpaceSaving, n: usize) -> Vec<Entry> {
    let (floor_a, floor_b) = (a.floor(), b.floor());
    let mut out: Vec<Entry> = Vec::with_capacity(a.len + b.len);
    for e in a.entries() {
        let mut e = *e;
        match b.entries().iter().find(|o| o.key.same(&e.key)) {
            Some(o) => {
                e.count += o.count;
                e.error += o.error;
                // `b` is the later span: its state is the newer.
                e.state = o.state;
            }
            None => {
                e.count += floor_b;
                e.error += floor_b;
            }
        }
        out.push(e);
    }
    for e in b.entries() {
        if !a.entries().iter().any(|o| o.key.same(&e.key)) {
            let mut e = *e;
            e.count += floor_a;
            e.error += floor_a;
            out.push(e);
        }
    }
    out.sort_by(|x, y| {
        y.count
            .cmp(&x.count)
            .then_with(|| x.key.kept().cmp(y.key.kept()))
    });
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn offer(s: &mut SpaceSaving, key: &str) {
        s.offer(&KeySnap::of(key), 1, LastState::default());
    }

    fn count(s: &SpaceSaving, key: &str) -> Option<(u64, u64)> {
        let k = KeySnap::of(key);
        s.entries()
            .iter()
            .find(|e| e.key.same(&k))
            .map(|e| (e.count, e.error))
    }

    #[test]
    fn counts_are_exact_under_capacity() {
        let mut s = SpaceSaving::new(8);
        for (key, times) in [("a", 5), ("b", 3), ("c", 1), ("d", 8)] {
            for _ in 0..times {
                offer(&mut s, key);
            }
        }
        assert_eq!(count(&s, "a"), Some((5, 0)));
        assert_eq!(count(&s, "b"), Some((3, 0)));
        assert_eq!(count(&s, "c"), Some((1, 0)));
        assert_eq!(count(&s, "d"), Some((8, 0)));
        assert_eq!(s.floor(), 0);
        let top = merge(&s, &SpaceSaving::new(8), 2);
        let names: Vec<_> = top.iter().map(|e| e.key.text()).collect();
        assert_eq!(names, ["d", "a"]);
    }

    /// A stream of many distinct keys with a few heavy ones, in a
    /// deterministic interleaving (a linear congruential sequence).
    fn stream() -> Vec<String> {
        let mut out = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..20_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = match i % 10 {
                0..=2 => "heavy-1".to_owned(),
                3 | 4 => "heavy-2".to_owned(),
                5 => "heavy-3".to_owned(),
                _ => format!("light-{}", (x >> 33) % 5_000),
            };
            out.push(key);
        }
        out
    }

    #[test]
    fn the_space_saving_bounds_hold_over_capacity() {
        let capacity = 32;
        let mut s = SpaceSaving::new(capacity);
        let mut truth: HashMap<String, u64> = HashMap::new();
        let keys = stream();
        for key in &keys {
            offer(&mut s, key);
            *truth.entry(key.clone()).or_default() += 1;
        }
        let n = keys.len() as u64;
        assert_eq!(s.total(), n);
        assert!(
            truth.len() > capacity * 10,
            "the stream overflows the sketch"
        );
        // Every monitored key: count − error ≤ true ≤ count.
        for e in s.entries() {
            let t = truth[&e.key.text()];
            assert!(e.count >= t, "{}: {} < {t}", e.key.text(), e.count);
            assert!(e.count - e.error <= t, "{}: lower bound", e.key.text());
            // Each count overestimates by at most n / m.
            assert!(e.error <= n / capacity as u64);
        }
        // Every key offered more than n / m times is monitored.
        for (key, &t) in &truth {
            if t > n / capacity as u64 {
                assert!(count(&s, key).is_some(), "{key} ({t}) lost");
            }
        }
        // The monitored counts sum to the total offered.
        assert_eq!(s.entries().iter().map(|e| e.count).sum::<u64>(), n);
        let top = merge(&s, &SpaceSaving::new(1), 3);
        let names: Vec<_> = top.iter().map(|e| e.key.text()).collect();
        assert_eq!(names, ["heavy-1", "heavy-2", "heavy-3"]);
    }

    #[test]
    fn merging_keeps_the_bounds() {
        let mut a = SpaceSaving::new(2);
        let mut b = SpaceSaving::new(2);
        for key in ["x", "x", "y", "z"] {
            offer(&mut a, key);
        }
        for key in ["x", "w", "w"] {
            offer(&mut b, key);
        }
        // a: x 2, z 2 (error 1, replaced y); b: x 1, w 2.
        let merged = merge(&a, &b, 10);
        let get = |k: &str| {
            merged
                .iter()
                .find(|e| e.key.text() == k)
                .map(|e| (e.count, e.error))
        };
        assert_eq!(get("x"), Some((3, 0)));
        // w: 2 in b, unseen in full a (floor 2).
        assert_eq!(get("w"), Some((4, 2)));
        // z: 2 (error 1) in a, unseen in full b (floor 1).
        assert_eq!(get("z"), Some((3, 2)));
    }

    #[test]
    fn clearing_keeps_the_capacity() {
        let mut s = SpaceSaving::new(4);
        offer(&mut s, "a");
        s.clear();
        assert!(s.entries().is_empty());
        assert_eq!(s.capacity(), 4);
        offer(&mut s, "b");
        assert_eq!(count(&s, "b"), Some((1, 0)));
    }
}
