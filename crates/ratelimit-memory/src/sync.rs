//! The one place that names the synchronisation primitives: `std`'s in a
//! normal build, [loom]'s model-checked ones under `RUSTFLAGS="--cfg loom"`.
//! Every other module imports `AtomicU64`, `Ordering` and `RwLock` from
//! here, so the loom tests check the code that ships.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::RwLock;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::RwLock;

use std::sync::PoisonError;

/// The read guard of `lock`, poisoned or not.
///
/// Poisoning carries no meaning here: a shard's table is valid between any
/// two of its operations (each entry is a key and a word; no operation
/// leaves them half-written), so a panic elsewhere while the lock was held
/// cannot have broken it.
pub(crate) fn read<T>(lock: &RwLock<T>) -> impl core::ops::Deref<Target = T> + '_ {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// The write guard of `lock`, poisoned or not (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> impl core::ops::DerefMut<Target = T> + '_ {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
