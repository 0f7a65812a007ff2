//! [`Prefetch`]: a shard's hint of where a key's control bytes and entry
//! lie, so that a check can ask for both cache lines before it takes the
//! shard's read lock.
//!
//! At a million keys the table does not fit in the caches, and a lookup
//! misses twice: hashbrown reads a group of control bytes at the key's home
//! position, then the entry it points to, which lives elsewhere in the
//! allocation. The second read depends on the first, and the lock's atomic
//! read-modify-write before both keeps them from overlapping anything
//! earlier, so the two misses are paid one after the other. Both addresses
//! follow from the hash alone, though: the probe starts at
//! `hash & (buckets − 1)`, its control bytes are at `ctrl + pos`, and
//! entry `i` is stored at `ctrl − (i + 1) × size_of::<T>()` (hashbrown keeps
//! its entries in reverse order just below the control bytes; in its
//! source, `RawTableInner::bucket_ptr` and `data_end`). A key is at its
//! home position, or a few slots after it, unless the table is nearly
//! full: prefetching the home entry's line and the control group lets both
//! misses overlap, with each other and with the lock and the clock read.
//!
//! Only a hint. The shard publishes `ctrl` and the mask (Relaxed) when an
//! insertion may have moved the table, under its write lock; a check reads
//! them without any lock. A stale or wrong hint costs a useless prefetch
//! and nothing else: a prefetch is not a memory access of the program
//! (it never faults, whatever the address, and reads nothing into it), and
//! every decision still goes through the locked lookup. The test
//! `the_hint_finds_every_entry` checks the address rule against the
//! hashbrown in use, so a change of its layout shows up as a failure, not
//! as a silent loss of speed.
//!
//! While some keys of the shard lag a change of quota, the shard also has
//! a tag per bucket (`keyed.rs`, `Pending`), read before the entry: the
//! home bucket's tag is prefetched too.
//!
//! x86-64 only (`prefetcht0`); elsewhere, and under loom, a no-op.

use hashbrown::HashTable;

#[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
use core::sync::atomic::{AtomicUsize, Ordering};

/// Where a shard's table of entries was, the last time an insertion
/// looked (see the module's docs).
#[derive(Debug, Default)]
pub(crate) struct Prefetch {
    /// The address of the table's control bytes; 0 until the first
    /// insertion.
    #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
    ctrl: AtomicUsize,
    /// The number of buckets minus one.
    #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
    mask: AtomicUsize,
    /// The address of the shard's tags (one byte per bucket, while some
    /// key lags a change of quota), or 0.
    #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
    tags: AtomicUsize,
}

impl Prefetch {
    /// Records where `table` is, from one of its entries: `entry`, at
    /// bucket `index`. Called under the shard's write lock after an
    /// insertion, the only operation that moves the table to a new
    /// allocation on the paths that then read it.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn note<T>(&self, table: &HashTable<T>, index: usize, entry: &T) {
        #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
        {
            let ctrl = (entry as *const T as usize).wrapping_add((index + 1) * size_of::<T>());
            // Relaxed: a hint; a reader that sees one field new and the
            // other old prefetches the wrong lines, nothing more.
            self.ctrl.store(ctrl, Ordering::Relaxed);
            self.mask
                .store(table.num_buckets().wrapping_sub(1), Ordering::Relaxed);
        }
    }

    /// Records where the shard's tags are (`None`: it has none). Called
    /// under the shard's write lock, where tags are made and dropped.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn note_tags<U>(&self, tags: Option<&[U]>) {
        #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
        self.tags
            .store(tags.map_or(0, |t| t.as_ptr() as usize), Ordering::Relaxed);
    }

    /// Asks for the cache lines of the control group and of the home
    /// entry of a key with this hash, in a table of `T`, and of its tag if
    /// the shard has tags.
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) fn issue<T>(&self, hash: u64) {
        #[cfg(all(target_arch = "x86_64", not(ratelimit_loom)))]
        {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let ctrl = self.ctrl.load(Ordering::Relaxed);
            if ctrl == 0 {
                return;
            }
            // hashbrown's probe start: `h1(hash) & bucket_mask`, with `h1`
            // the hash as a `usize`.
            let home = (hash as usize) & self.mask.load(Ordering::Relaxed);
            let group = ctrl.wrapping_add(home);
            let entry = ctrl.wrapping_sub((home + 1) * size_of::<T>());
            // SAFETY: `prefetcht0` is a hint: it reads nothing into the
            // program and never faults, whatever the address (Intel SDM,
            // PREFETCHh; AMD APM, PREFETCHlevel). SSE, which it needs, is
            // part of the x86-64 baseline.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(group as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(entry as *const i8);
            }
            let tags = self.tags.load(Ordering::Relaxed);
            if tags != 0 {
                // A tag per bucket: the home bucket's, like the entry.
                let tag = tags.wrapping_add(home);
                // SAFETY: as above.
                #[allow(unsafe_code)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(tag as *const i8);
                }
            }
        }
    }

    /// The tags' address the hint holds (0: none), for tests.
    #[cfg(all(test, target_arch = "x86_64", not(ratelimit_loom)))]
    pub(crate) fn tags_address(&self) -> usize {
        self.tags.load(Ordering::Relaxed)
    }

    /// The home entry's address the hint gives for `hash`, if it has one
    /// (for the test of the address rule).
    #[cfg(all(test, target_arch = "x86_64", not(ratelimit_loom)))]
    pub(crate) fn home_entry<T>(&self, hash: u64) -> Option<usize> {
        let ctrl = self.ctrl.load(Ordering::Relaxed);
        let home = (hash as usize) & self.mask.load(Ordering::Relaxed);
        (ctrl != 0).then(|| ctrl.wrapping_sub((home + 1) * size_of::<T>()))
    }
}

#[cfg(all(test, target_arch = "x86_64", not(ratelimit_loom)))]
mod tests {
    use super::*;

    /// A fixed, well-mixed hash of a key (splitmix64's finaliser), so the
    /// test needs no seed.
    fn mix(mut x: u64) -> u64 {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// The address rule against the hashbrown in use: entry `i` is at
    /// `ctrl − (i + 1) × size`, and the probe starts at `hash & mask`, at
    /// every size the table passes through.
    #[test]
    fn the_hint_finds_every_entry() {
        type Entry = (u64, [u64; 2]);
        let mut table: HashTable<Entry> = HashTable::new();
        let hint = Prefetch::default();
        assert_eq!(
            hint.home_entry::<Entry>(1),
            None,
            "no hint before an insertion"
        );
        let mut at_home = 0;
        let mut checked = 0;
        for key in 0..5_000_u64 {
            let hash = mix(key);
            let i = table
                .insert_unique(hash, (key, [0; 2]), |e| mix(e.0))
                .bucket_index();
            hint.note(&table, i, table.get_bucket(i).unwrap());
            // Every entry so far, at this size of the table.
            if key % 500 == 499 {
                let mask = table.num_buckets() - 1;
                for k in 0..=key {
                    let hash = mix(k);
                    let j = table.find_bucket_index(hash, |e| e.0 == k).unwrap();
                    let address = table.get_bucket(j).unwrap() as *const Entry as usize;
                    let home_index = (hash as usize) & mask;
                    let home = hint.home_entry::<Entry>(hash).unwrap();
                    let ctrl = home + (home_index + 1) * size_of::<Entry>();
                    assert_eq!(address, ctrl - (j + 1) * size_of::<Entry>(), "key {k}");
                    at_home += usize::from(j == home_index);
                    checked += 1;
                }
            }
        }
        // Most keys are at their home slot, so the prefetched line is
        // theirs (about 70 % here, at loads from 3/8 to 7/8); with the
        // probe starting anywhere else, almost none would be.
        assert!(at_home * 2 >= checked, "{at_home} of {checked} at home");
    }
}
