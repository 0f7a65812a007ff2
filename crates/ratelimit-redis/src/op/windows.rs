//! Changing a window limiter's quota (docs/redis.md, "Changing quotas"):
//! a change keeps every key's counts and may change `L`; a new `W` starts
//! every key afresh (docs/semantics.md). Nothing needs converting
//! exactly, so unlike the buckets' the scripts decide it themselves: each
//! state carries the tag of the quota version it was stored under, and a
//! call under a changed quota sends `<version> <base> <tag>` (the base
//! being the oldest version whose counts still hold: every change since
//! kept `W`). The changes go through the same quota record as the
//! buckets', `<prefix>#quota`, each entry `<L> <W ns> keep-consumed
//! <at ns>`.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::{PoisonError, RwLock};

use ratelimit_core::{Algorithm, AnyAlgorithm};

use super::Engine;
use crate::config::TimeSource;
use crate::error::RedisLimitError;
use crate::script::Params;

/// The changes of a window limiter's quota, oldest first (version `n` is
/// change `n`; version 0 is the algorithm it was built with).
#[derive(Debug, Default)]
pub(crate) struct WindowQuotas {
    changes: RwLock<Vec<WindowChange>>,
    /// Whether calls carry tag specs: set by the first change seen, never
    /// cleared.
    tagged: AtomicBool,
}

/// One change of a window limiter's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowChange {
    limit: u64,
    window_ns: u64,
    at_ns: u64,
    /// The oldest version whose counts hold at this change's version (the
    /// last change of `W`, or 0): set when the change is appended.
    base: usize,
}

impl WindowChange {
    /// The same change (whatever `base`).
    fn same(&self, other: &Self) -> bool {
        (self.limit, self.window_ns, self.at_ns) == (other.limit, other.window_ns, other.at_ns)
    }
}

impl WindowChange {
    /// The change as the quota record holds it (the strategy field is
    /// there for the record's format; windows have none).
    pub(crate) fn entry(&self) -> String {
        format!(
            "{} {} keep-consumed {}",
            self.limit, self.window_ns, self.at_ns
        )
    }
}

/// What a call under a changed window quota is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowTarget {
    /// The scripts' parameters of the quota it decides under.
    pub(crate) params: Params,
    /// Its `L`: every decision's `limit`.
    pub(crate) limit: u64,
    /// `<version> <base> <tag>`: the last ARGV of `window.lua`.
    pub(crate) spec: String,
}

fn bad_entry(entry: &str) -> RedisLimitError {
    RedisLimitError::UnexpectedReply(format!("a window quota record entry: {entry:?}"))
}

/// A record entry of a window limiter.
fn parse_entry(entry: &str) -> Result<WindowChange, RedisLimitError> {
    let mut parts = entry.split(' ');
    let (Some(l), Some(w), Some(_strategy), Some(at), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad_entry(entry));
    };
    let (Ok(limit), Ok(window_ns), Ok(at_ns)) = (l.parse(), w.parse(), at.parse()) else {
        return Err(bad_entry(entry));
    };
    Ok(WindowChange {
        limit,
        window_ns,
        at_ns,
        base: 0,
    })
}

impl<A: Algorithm> Engine<A> {
    /// Whether this is a window limiter.
    pub(crate) fn is_window(&self) -> bool {
        matches!(self.params, Params::Window { .. })
    }

    /// Whether calls carry window tag specs (a change was made or seen).
    pub(crate) fn window_tagged(&self) -> bool {
        self.windows.tagged.load(Ordering::Acquire)
    }

    fn not_a_window() -> RedisLimitError {
        RedisLimitError::InvalidOption(
            "reconfigure_window is for the window algorithms; a bucket's quota changes with reconfigure".to_owned(),
        )
    }

    /// The scripts' parameters of a window of `limit` per `window_ns` of
    /// this limiter's kind, or why the scripts cannot run it exactly.
    fn window_params(&self, limit: u64, window_ns: u64) -> Result<Params, RedisLimitError> {
        let any = AnyAlgorithm::with_window(
            self.algorithm.kind(),
            limit,
            Duration::from_nanos(window_ns),
        )
        .map_err(|e| RedisLimitError::InvalidOption(format!("a window quota: {e}")))?;
        Params::of(&any, self.time == TimeSource::Server)
    }

    /// `(L, W)` at `version`.
    fn window_at(&self, version: usize, changes: &[WindowChange]) -> (u64, u64) {
        match version.checked_sub(1).and_then(|i| changes.get(i)) {
            Some(c) => (c.limit, c.window_ns),
            None => (self.algorithm.limit(), self.algorithm.to_any().period_ns()),
        }
    }

    /// The window limiter's version, `L` and `W` now.
    pub(crate) fn window_current(&self) -> Result<(usize, u64, u64), RedisLimitError> {
        if !self.is_window() {
            return Err(Self::not_a_window());
        }
        let changes = self
            .windows
            .changes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (limit, window_ns) = self.window_at(changes.len(), &changes);
        Ok((changes.len(), limit, window_ns))
    }

    /// What calls are sent with under the current window quota (`own`:
    /// under a key's own window instead); `None` before any change nor
    /// any key's own window (calls then carry no spec, as they always
    /// did).
    pub(crate) fn window_target(
        &self,
        own: Option<&A>,
    ) -> Result<Option<WindowTarget>, RedisLimitError> {
        let own = match own {
            Some(w) => {
                let (limit, window_ns) = (w.limit(), w.to_any().period_ns());
                let params = self.window_params(limit, window_ns)?;
                // From now on every call carries a spec: an untagged call
                // would refuse the keys stored under their own windows.
                self.windows.tagged.store(true, Ordering::Release);
                Some((limit, window_ns, params))
            }
            None if !self.window_tagged() => return Ok(None),
            None => None,
        };
        let changes = self
            .windows
            .changes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let version = changes.len();
        let (limit, window_ns) = self.window_at(version, &changes);
        let base = changes.last().map_or(0, |c| c.base);
        Ok(Some(match own {
            // A key's own window: a state of the limiter's quota moves to
            // it keeping its counts only when W is the same.
            Some((own_limit, own_w, params)) => WindowTarget {
                params,
                limit: own_limit,
                spec: format!(
                    "{version} {} q{own_limit}x{own_w}",
                    if own_w == window_ns {
                        base
                    } else {
                        version + 1
                    }
                ),
            },
            None => {
                let tag = if version == 0 {
                    String::new()
                } else {
                    format!("v{version}")
                };
                WindowTarget {
                    params: self.window_params(limit, window_ns)?,
                    limit,
                    spec: format!("{version} {base} {tag}"),
                }
            }
        }))
    }

    /// Makes every later call carry a spec (after meeting a key stored
    /// under a key's own window, with no change of quota to adopt).
    pub(crate) fn window_tag_calls(&self) {
        self.windows.tagged.store(true, Ordering::Release);
    }

    /// The change to `to` at `at_ns` as this limiter would make it now:
    /// its version and the change (a time before the last change's counts
    /// as that change's).
    pub(crate) fn window_change(
        &self,
        to: &A,
        at_ns: u64,
    ) -> Result<(usize, WindowChange), RedisLimitError> {
        if !self.is_window() {
            return Err(Self::not_a_window());
        }
        let (limit, window_ns) = (to.limit(), to.to_any().period_ns());
        self.window_params(limit, window_ns)?;
        let changes = self
            .windows
            .changes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let at_ns = changes.last().map_or(at_ns, |c| at_ns.max(c.at_ns));
        Ok((
            changes.len(),
            WindowChange {
                limit,
                window_ns,
                at_ns,
                base: 0,
            },
        ))
    }

    /// Appends `change` as version `version + 1` locally, if this limiter
    /// is still at `version`.
    pub(crate) fn window_push(&self, version: usize, change: WindowChange) -> bool {
        let mut changes = self
            .windows
            .changes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if changes.len() != version {
            return false;
        }
        self.append(&mut changes, change);
        self.windows.tagged.store(true, Ordering::Release);
        true
    }

    /// Adopts the record's changes from version `from + 1` on (`entries`,
    /// as `quota.lua` answers them); those already known must match.
    pub(crate) fn window_adopt(
        &self,
        from: usize,
        entries: &[String],
    ) -> Result<(), RedisLimitError> {
        let parsed = entries
            .iter()
            .map(|e| {
                let c = parse_entry(e)?;
                self.window_params(c.limit, c.window_ns)?;
                Ok(c)
            })
            .collect::<Result<Vec<_>, RedisLimitError>>()?;
        let mut changes = self
            .windows
            .changes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, change) in parsed.into_iter().enumerate() {
            match changes.get(from + i) {
                Some(known) if known.same(&change) => {}
                Some(_) => {
                    return Err(RedisLimitError::Misconfigured {
                        message: format!(
                            "the quota record of the prefix `{}` disagrees with this limiter's change {}",
                            self.keys.prefix(),
                            from + i + 1
                        ),
                        source: None,
                    });
                }
                None if changes.len() == from + i => self.append(&mut changes, change),
                None => return Err(super::unanswered()),
            }
        }
        if !changes.is_empty() {
            self.windows.tagged.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Appends `change`, with its base.
    fn append(&self, changes: &mut Vec<WindowChange>, mut change: WindowChange) {
        let version = changes.len();
        change.base = if change.window_ns == self.window_at(version, changes).1 {
            changes.last().map_or(0, |c| c.base)
        } else {
            version + 1
        };
        changes.push(change);
    }

    /// A key of a newer version than the record holds for this limiter.
    pub(crate) fn window_stale(&self, version: usize) -> RedisLimitError {
        RedisLimitError::Misconfigured {
            message: format!(
                "a key's window state is of a newer quota than this limiter's version {version} \
                 after reading the quota record `{}#quota`: the record lost changes (deleted?); \
                 this limiter will not decide the key with an older quota",
                self.keys.prefix()
            ),
            source: None,
        }
    }
}
