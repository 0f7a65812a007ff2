//! What a reconfiguration of a million keys costs: the call itself, the
//! first check of every key after it (each converted then) against a
//! normal check, and a second pass. Single thread, best of a few runs:
//!
//! ```text
//! cargo run -p ratelimit-memory --release --example reconfigure
//! ```
//!
//! Speed goals live in benchmarks, not tests; this prints the figures the
//! crate's docs quote, for a quick check of a change.

use core::hint::black_box;
use std::time::Instant;

use ratelimit_memory::{KeyedLimiter, Rate, Strategy, TokenBucket};

const KEYS: u64 = 1_000_000;

/// Nanoseconds per check of every key once, in a scrambled order.
fn pass(limiter: &KeyedLimiter<u64, TokenBucket>, order: &[u64]) -> f64 {
    let start = Instant::now();
    for key in order {
        let _ = black_box(limiter.check(key));
    }
    start.elapsed().as_nanos() as f64 / order.len() as f64
}

fn main() {
    // Roomy enough that no check is denied, and every key is ~2 minutes
    // ahead after its first check (none expires during the run).
    let quota = |c: u64| TokenBucket::with_rate(c, Rate::per_hour(c)).unwrap();
    // A permutation of the keys (999 983 is prime, so coprime to KEYS);
    // their slots are scattered by the hash anyway.
    let order: Vec<u64> = (0..KEYS).map(|i| i * 999_983 % KEYS).collect();
    let mut best = [f64::INFINITY; 4];
    for run in 0..3 {
        let limiter = KeyedLimiter::<u64, _>::builder(quota(1 << 30))
            .max_keys(2 * KEYS as usize)
            .build();
        for key in 0..KEYS {
            let _ = limiter.check_n(&key, 1 << 25);
        }
        let normal = pass(&limiter, &order);
        let start = Instant::now();
        limiter.reconfigure(quota(1 << 31), Strategy::KeepConsumed);
        let call = start.elapsed().as_nanos() as f64;
        let first = pass(&limiter, &order);
        let second = pass(&limiter, &order);
        assert_eq!(limiter.keys_to_convert(), 0);
        for (b, x) in best.iter_mut().zip([normal, call, first, second]) {
            *b = b.min(x);
        }
        println!(
            "run {run}: normal {normal:.1} ns, reconfigure {call:.0} ns, first {first:.1} ns, second {second:.1} ns"
        );
    }
    let [normal, call, first, second] = best;
    println!("best of 3, {KEYS} keys:");
    println!("  check before the change       {normal:6.1} ns");
    println!("  reconfigure()                 {:6.1} us", call / 1000.0);
    println!(
        "  first check of each key after {first:6.1} ns ({:.2}x)",
        first / normal
    );
    println!("  second check                  {second:6.1} ns");
}
