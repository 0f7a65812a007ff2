//! A keyed limiter's quota over time: the epoch of its latest change and
//! the history of changes that shards have not all caught up with yet.
//!
//! `reconfigure` appends a [`Change`] and publishes its epoch; nothing else
//! happens at that moment, whatever the number of keys. Each shard notices
//! the new epoch at its next access, copies the changes it has not seen
//! (under its write lock) and converts its keys lazily, each at its own
//! next access, with the changes it keeps (`keyed.rs`, docs/concurrency.md).
//! The history here only serves shards that have not caught up: it is
//! pruned to the oldest epoch a shard still lacks.

use std::collections::VecDeque;

use ratelimit_core::Strategy;

use crate::sync::{self, AtomicU64, Ordering, RwLock};

/// One change of a limiter's quota: from `at` on, `algorithm` applies,
/// the keys' states converted with `strategy`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<A> {
    /// The time of the change, on the limiter's clock.
    pub(crate) at: u64,
    /// The new quota.
    pub(crate) algorithm: A,
    /// How states carry over.
    pub(crate) strategy: Strategy,
}

/// The epoch of the latest change (0: the quota the limiter was built
/// with) and the changes shards may still need.
#[derive(Debug)]
pub(crate) struct Config<A> {
    /// The latest epoch. Written under the history's write lock, read
    /// without a lock on every decision.
    epoch: AtomicU64,
    history: RwLock<History<A>>,
}

#[derive(Debug)]
struct History<A> {
    /// The epoch of `changes[0]`.
    first: u64,
    /// The changes of epochs `first ..= first + len − 1`, oldest first.
    changes: VecDeque<Change<A>>,
    /// The time of the latest change (changes never go back in time).
    latest_at: u64,
    /// The quota in force: the latest change's, or the first one.
    current: A,
}

impl<A: Copy> Config<A> {
    pub(crate) fn new(algorithm: A) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            history: RwLock::new(History {
                first: 1,
                changes: VecDeque::new(),
                latest_at: 0,
                current: algorithm,
            }),
        }
    }

    /// The quota in force.
    pub(crate) fn current(&self) -> A {
        sync::read(&self.history).current
    }

    /// The latest epoch. Relaxed would do (a shard reads the changes under
    /// the history's lock, which orders them); Acquire documents the pair.
    #[inline]
    pub(crate) fn latest(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Appends a change at `at` (or at the previous change's time, if the
    /// clock went back) and publishes its epoch; returns the epoch and
    /// the time the change took effect.
    pub(crate) fn push(&self, algorithm: A, strategy: Strategy, at: u64) -> (u64, u64) {
        let mut h = sync::write(&self.history);
        let at = at.max(h.latest_at);
        h.latest_at = at;
        h.current = algorithm;
        h.changes.push_back(Change {
            at,
            algorithm,
            strategy,
        });
        let epoch = h.first + h.changes.len() as u64 - 1;
        self.epoch.store(epoch, Ordering::Release);
        (epoch, at)
    }

    /// The changes after `epoch`, oldest first (empty when `epoch` is the
    /// latest). `epoch` must not be older than what [`prune`](Self::prune)
    /// kept: the caller is a shard at `epoch`, which holds prunes back.
    pub(crate) fn since(&self, epoch: u64) -> Vec<Change<A>> {
        let h = sync::read(&self.history);
        let skip = (epoch + 1).saturating_sub(h.first) as usize;
        debug_assert!(epoch + 1 >= h.first, "history pruned past a shard");
        h.changes.iter().skip(skip).copied().collect()
    }

    /// Forgets the changes of epochs up to `oldest_seen`, which every
    /// shard has copied.
    pub(crate) fn prune(&self, oldest_seen: u64) {
        let mut h = sync::write(&self.history);
        while h.first <= oldest_seen && !h.changes.is_empty() {
            h.changes.pop_front();
            h.first += 1;
        }
    }

    /// The number of changes kept.
    pub(crate) fn kept(&self) -> usize {
        sync::read(&self.history).changes.len()
    }
}
