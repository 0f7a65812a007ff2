//! Keys and key orders for the keyed shapes: distinct `u64` keys and a
//! precomputed random sequence over them, so that every implementation
//! sees the same keys in the same order and no random number is drawn
//! inside a timed loop.

/// SplitMix64: a bijection on `u64` with good mixing, used both as the key
/// generator (so keys are distinct) and as a small seeded random source.
#[must_use]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th key of every key set: distinct for distinct `i`, spread over
/// the whole `u64` range (not `0..n`, which flatters identity hashers).
#[must_use]
pub fn key(i: u64) -> u64 {
    splitmix64(i ^ 0x5eed_0000_0000_0000)
}

/// `count` distinct keys, as [`key`] numbers them.
#[must_use]
pub fn keys(count: usize) -> Vec<u64> {
    (0..count as u64).map(key).collect()
}

/// A random order of accesses over `keys`: `len` keys drawn uniformly with
/// replacement, `len` rounded up to a power of two so a timed loop can wrap
/// its cursor with a mask.
#[must_use]
pub fn random_order(keys: &[u64], len: usize, seed: u64) -> Vec<u64> {
    assert!(!keys.is_empty(), "a random order needs at least one key");
    let len = len.next_power_of_two();
    let n = keys.len() as u64;
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(1);
            // Multiply-shift maps the draw onto 0..n without modulo bias
            // worth mentioning at these sizes.
            let r = splitmix64(state);
            let index = ((u128::from(r) * u128::from(n)) >> 64) as usize;
            keys[index]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct() {
        let mut k = keys(100_000);
        k.sort_unstable();
        k.dedup();
        assert_eq!(k.len(), 100_000);
    }

    #[test]
    fn random_order_covers_the_keys() {
        let k = keys(1000);
        let order = random_order(&k, 10_000, 7);
        assert_eq!(order.len(), 16_384);
        let mut seen: Vec<u64> = order.clone();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 990, "{} distinct keys", seen.len());
        assert!(order.iter().all(|x| k.contains(x)));
    }
}
