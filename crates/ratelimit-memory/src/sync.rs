//! The one place that names the synchronisation primitives: `std`'s (and
//! `portable-atomic`'s 128-bit atomic) in a normal build, [loom]'s
//! model-checked ones under `RUSTFLAGS="--cfg ratelimit_loom"`. Every other
//! module imports `AtomicU64`, `AtomicU128`, `Ordering`, `Mutex` and `RwLock` from
//! here, so the loom tests check the code that ships.
//!
//! The cfg is named for this project, not plain `loom`: a downstream crate
//! that model-checks its own code with `--cfg loom` must not swap ours.
//!
//! [loom]: https://docs.rs/loom

#[cfg(ratelimit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(ratelimit_loom)]
pub(crate) use loom::sync::{Mutex, RwLock};
#[cfg(ratelimit_loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(ratelimit_loom))]
pub(crate) use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
/// A 128-bit atomic: `cmpxchg16b` on x86-64 (detected at run time),
/// `casp`/`ldxp`-`stxp` on AArch64; where a target has no 128-bit
/// compare-and-swap, portable-atomic's fallback (a seqlock, not lock-free).
#[cfg(not(ratelimit_loom))]
pub(crate) use portable_atomic::AtomicU128;
#[cfg(not(ratelimit_loom))]
pub(crate) use std::sync::{Mutex, RwLock};
#[cfg(not(ratelimit_loom))]
pub(crate) use std::thread::yield_now;

use std::sync::PoisonError;

/// Loom has no 128-bit atomic: a mutex-held `u128` with the same three
/// operations stands in for it, so the models check the protocol built on
/// a 128-bit compare-and-swap (the hardware's atomicity is assumed, as for
/// every other atomic loom models).
///
/// Public (though unnameable) because it is the sealed `Word` trait's cell
/// under loom, as `portable_atomic::AtomicU128` is otherwise.
#[cfg(ratelimit_loom)]
#[derive(Debug)]
pub struct AtomicU128(loom::sync::Mutex<u128>);

#[cfg(ratelimit_loom)]
impl AtomicU128 {
    pub(crate) fn new(value: u128) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn load(&self, _: Ordering) -> u128 {
        *self.0.lock().unwrap()
    }

    pub(crate) fn store(&self, value: u128, _: Ordering) {
        *self.0.lock().unwrap() = value;
    }

    pub(crate) fn compare_exchange_weak(
        &self,
        current: u128,
        new: u128,
        _: Ordering,
        _: Ordering,
    ) -> Result<u128, u128> {
        let mut value = self.0.lock().unwrap();
        if *value == current {
            *value = new;
            Ok(current)
        } else {
            Err(*value)
        }
    }
}

/// A bucket's writer flag: a lock without a guard, set by an
/// all-or-nothing check for as long as it may roll the bucket back
/// (`multi.rs`). A one-byte spin lock: `swap` with Acquire sets it, a
/// Release store clears it; a waiter reads until it looks clear (yielding
/// every 64 reads) and tries again. It is held for a few charges, never
/// across a lock or a system call.
#[cfg(not(ratelimit_loom))]
#[derive(Debug)]
pub struct Flag(AtomicU8);

#[cfg(not(ratelimit_loom))]
impl Flag {
    pub(crate) fn new() -> Self {
        Self(AtomicU8::new(0))
    }

    /// Sets the flag, waiting while another holder has it.
    #[inline]
    pub(crate) fn lock(&self) {
        // Acquire: pairs with the Release of the previous holder's clear.
        while self.0.swap(1, Ordering::Acquire) != 0 {
            let mut spins = 0u32;
            while self.0.load(Ordering::Relaxed) != 0 {
                spins += 1;
                if spins % 64 == 0 {
                    yield_now();
                } else {
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Clears the flag (the caller set it).
    #[inline]
    pub(crate) fn unlock(&self) {
        // Release: what the holder wrote happens before the next holder's
        // writes.
        self.0.store(0, Ordering::Release);
    }
}

/// The writer flag under loom: the same lock as a mutex-guarded boolean
/// and a condition variable, so the model checker sees a waiter block
/// instead of spinning (loom cannot bound a spin loop).
#[cfg(ratelimit_loom)]
pub struct Flag {
    held: loom::sync::Mutex<bool>,
    clear: loom::sync::Condvar,
}

#[cfg(ratelimit_loom)]
impl core::fmt::Debug for Flag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Flag")
    }
}

#[cfg(ratelimit_loom)]
impl Flag {
    pub(crate) fn new() -> Self {
        Self {
            held: loom::sync::Mutex::new(false),
            clear: loom::sync::Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) {
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.clear.wait(held).unwrap();
        }
        *held = true;
    }

    pub(crate) fn unlock(&self) {
        *self.held.lock().unwrap() = false;
        self.clear.notify_one();
    }
}

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

/// The guard of a `Mutex<()>`.
#[cfg(ratelimit_loom)]
pub(crate) type MutexGuard<'a> = loom::sync::MutexGuard<'a, ()>;
/// The guard of a `Mutex<()>`.
#[cfg(not(ratelimit_loom))]
pub(crate) type MutexGuard<'a> = std::sync::MutexGuard<'a, ()>;

/// The guard of `lock`, poisoned or not (it guards no data: only the right
/// to write, see `keyed.rs`).
pub(crate) fn lock(lock: &Mutex<()>) -> MutexGuard<'_> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}
