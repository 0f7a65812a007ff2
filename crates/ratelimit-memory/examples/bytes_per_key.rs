//! Bytes per key of a `KeyedLimiter<u64, _>` holding one million live keys,
//! measured two ways:
//!
//! - resident memory: the growth of this process's RSS (`/proc/self/statm`)
//!   while the keys go in, divided by the keys held (includes allocator
//!   overhead and the tables' free slots; Linux only);
//! - analytic: the tables' slots (from `capacity()`: a SwissTable holds
//!   7/8 of its power-of-two slot count) × (16-byte entry + 1 control byte).
//!
//! ```text
//! cargo run -p ratelimit-memory --release --example bytes_per_key [KEYS]
//! ```

use std::sync::Arc;

use ratelimit_memory::{KeyedLimiter, ManualClock, Rate, TokenBucket};

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("KEYS is a number"));
    // Every key stays live: one token of a bucket refilled once an hour.
    let algorithm = TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap();
    let clock = Arc::new(ManualClock::new(1));
    let before = rss_bytes();
    let limiter = KeyedLimiter::<u64, _, _>::builder(algorithm)
        .max_keys(2 * keys as usize)
        .clock(clock)
        .build();
    for k in 0..keys {
        assert!(
            limiter
                .check(&k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .allowed
        );
    }
    let after = rss_bytes();
    let held = limiter.len() as f64;
    let entry = size_of::<(u64, u64)>();
    let slots = limiter.capacity() * 8 / 7;
    println!("keys held            {}", limiter.len());
    println!("shards               {}", limiter.shards());
    println!(
        "table slots          {slots} (load {:.2})",
        held / slots as f64
    );
    println!(
        "analytic             {:.1} bytes/key ({} B entry + 1 control byte per slot)",
        (slots * (entry + 1)) as f64 / held,
        entry
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "resident (RSS delta) {:.1} bytes/key",
            a.saturating_sub(b) as f64 / held
        ),
        _ => println!("resident (RSS delta) unavailable (no /proc/self/statm)"),
    }
}
