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

/// The `i`-th string key: 12 bytes of text, `u` and 11 hex digits of `i`
/// times an odd constant modulo 2^44 (a bijection there, so keys are
/// distinct for distinct `i` below 2^44, and their digits look random).
#[must_use]
pub fn string_key(i: u64) -> String {
    const MASK: u64 = (1 << 44) - 1;
    format!("u{:011x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & MASK)
}

/// `count` distinct string keys, as [`string_key`] numbers them.
#[must_use]
pub fn strings(count: usize) -> Vec<String> {
    (0..count as u64).map(string_key).collect()
}

/// A random permutation of `0..n` (Fisher–Yates, seeded).
#[must_use]
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = state.wrapping_add(1);
        let j = ((u128::from(splitmix64(state)) * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
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
    fn string_keys_are_distinct_and_12_bytes() {
        let mut k = strings(1_000_000);
        assert!(k.iter().all(|s| s.len() == 12));
        k.sort_unstable();
        k.dedup();
        assert_eq!(k.len(), 1_000_000);
    }

    #[test]
    fn permutation_visits_each_once_per_pass() {
        let mut p = permutation(1000, 3);
        assert_ne!(p[..10], (0..10).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
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
