//! How keys are spread over a keyed limiter's shards, and how `max_keys`
//! is split between them.
//!
//! Unevenly, on purpose. A SwissTable doubles when it is 7/8 full, so its
//! memory per key swings between 17/(7/8) ≈ 19 and 17/(7/16) ≈ 39 bytes
//! for a 16-byte entry. With equal shards every table doubles at the same
//! total key count and the whole map swings with it (36 bytes per key at
//! one million keys, 20 at 900 000). Here shard `i` of `n` receives a
//! share of the hash space proportional to `2^(i/n)`: the shards' sizes
//! spread evenly (in log scale) over one octave, so at any key count their
//! doublings are spread too, and the map's load stays near its average,
//! about 7/16 / ln 2 ≈ 0.63, i.e. ≈ 27 bytes per `u64` key, at every size.
//! The shard comes from a 4096-slot table indexed by 12 bits of the hash.

/// Bits of the hash that pick a slot.
const SLOT_BITS: u32 = 12;
/// Slots of the shard map.
const SLOTS: usize = 1 << SLOT_BITS;

/// The shard map and each shard's share of `max_keys`.
pub(crate) struct Layout {
    /// Slot → shard.
    map: Box<[u8]>,
    /// Each shard's share of `max_keys`; they sum to `max_keys` exactly.
    pub(crate) limits: Vec<usize>,
}

impl Layout {
    /// `shards` (1 to 256; at most `max_keys` unless it is 0) spread over
    /// one octave of sizes.
    pub(crate) fn new(shards: usize, max_keys: usize) -> Self {
        debug_assert!((1..=256).contains(&shards));
        let weights: Vec<f64> = (0..shards)
            .map(|i| (i as f64 / shards as f64).exp2())
            .collect();
        let total: f64 = weights.iter().sum();
        let slots = apportion(SLOTS, &weights, total);
        let mut map = Vec::with_capacity(SLOTS);
        for (shard, &n) in slots.iter().enumerate() {
            map.extend(core::iter::repeat_n(shard as u8, n));
        }
        // Every shard gets one key of the bound first (so none refuses every
        // key that hashes to it), the rest in proportion to its slots.
        let base = usize::from(max_keys >= shards);
        let rest = max_keys - base * shards;
        let limits = apportion_exact(rest, &slots)
            .into_iter()
            .map(|n| n + base)
            .collect();
        Self {
            map: map.into_boxed_slice(),
            limits,
        }
    }

    /// The shard of a key with this hash.
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> usize {
        // hashbrown takes its 7-bit tag from the top 7 bits of the hash and
        // the bucket index from the low bits; every key of a shard shares
        // the slot bits, so they must be neither: the 12 just below the tag.
        let slot = (hash << 7) >> (64 - SLOT_BITS);
        usize::from(self.map[slot as usize])
    }
}

/// `total` split in proportion to `weights` (summing to `weight_sum`):
/// floors first, then one more to the parts with the largest remainders,
/// so the parts sum to `total` exactly.
fn apportion(total: usize, weights: &[f64], weight_sum: f64) -> Vec<usize> {
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| total as f64 * w / weight_sum)
        .collect();
    let mut parts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let given: usize = parts.iter().sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(b.cmp(&a))
    });
    for &i in order.iter().cycle().take(total.saturating_sub(given)) {
        parts[i] += 1;
    }
    parts
}

/// `total` split in proportion to the integer `weights`, in integers:
/// exact for every `total` up to `usize::MAX` (a bound of `usize::MAX`
/// means "no bound", which floats would round and overflow).
fn apportion_exact(total: usize, weights: &[usize]) -> Vec<usize> {
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    let shares: Vec<(usize, u128)> = weights
        .iter()
        .map(|&w| {
            let scaled = total as u128 * w as u128;
            // Each share is at most `total`, so it fits in usize.
            ((scaled / sum) as usize, scaled % sum)
        })
        .collect();
    let mut parts: Vec<usize> = shares.iter().map(|&(q, _)| q).collect();
    // The floors fall short of `total` by less than the number of parts.
    let given = parts.iter().fold(0usize, |acc, &p| acc.saturating_add(p));
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(b.cmp(&a)));
    for &i in order.iter().take(total - given) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_limits_sum_exactly() {
        for shards in [1, 2, 4, 8, 16, 32, 64] {
            for max_keys in [shards, shards + 1, 1000, 10_000, 1 << 20, 999_983] {
                let layout = Layout::new(shards, max_keys);
                assert_eq!(layout.map.len(), SLOTS);
                assert_eq!(layout.limits.iter().sum::<usize>(), max_keys);
                assert!(layout.limits.iter().all(|&l| l >= 1));
                let counts = (0..shards)
                    .map(|s| layout.map.iter().filter(|&&m| usize::from(m) == s).count())
                    .collect::<Vec<_>>();
                // Sizes grow across the octave: the last shard has about
                // twice the first one's slots.
                let ratio = counts[shards - 1] as f64 / counts[0] as f64;
                assert!(shards == 1 || (1.3..=2.1).contains(&ratio), "{counts:?}");
            }
        }
        assert_eq!(Layout::new(1, 0).limits, [0]);
        // No bound at all: the shares still sum exactly, without overflow.
        for shards in [1, 7, 64] {
            let limits = Layout::new(shards, usize::MAX).limits;
            assert_eq!(
                limits.iter().map(|&l| l as u128).sum::<u128>(),
                usize::MAX as u128
            );
        }
    }

    #[test]
    fn every_slot_is_reachable() {
        let layout = Layout::new(64, 1 << 20);
        let mut seen = [false; 64];
        for slot in 0..SLOTS as u64 {
            let hash = slot << (64 - 7 - SLOT_BITS);
            seen[layout.shard(hash)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(layout.shard(0), 0);
        assert_eq!(layout.shard(u64::MAX), 63);
    }
}
