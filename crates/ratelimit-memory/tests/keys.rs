//! Memory bounded in bytes, not only in keys (issue 15): a flood of 2 000
//! distinct 390 KB keys (the attack on the example gateway, which went from
//! 5 MB to 680 MB) is refused before anything is stored, and a table full
//! of the longest keys allowed stays under the bound the README states,
//! measured as the resident memory of a child process.

use core::net::{IpAddr, Ipv6Addr};
use core::time::Duration;
use std::sync::Arc;

use ratelimit_memory::{
    DEFAULT_MAX_KEY_LEN, KeyBytes, KeyedLimiter, ManualClock, Rate, Reason, TokenBucket,
};

fn hourly(max_keys: usize) -> KeyedLimiter<String, TokenBucket, Arc<ManualClock>> {
    KeyedLimiter::builder(TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap())
        .max_keys(max_keys)
        .clock(Arc::new(ManualClock::new(1_000_000_000)))
        .build()
}

/// One 390 KB buffer, a different key each time (its first bytes are the
/// counter): the flood costs the test no memory of its own.
fn flood(limiter: &KeyedLimiter<String, TokenBucket, Arc<ManualClock>>, keys: usize) {
    let mut key = "k".repeat(390 * 1024);
    for i in 0..keys {
        key.replace_range(..8, &format!("{i:08}"));
        let d = limiter.check(&*key);
        assert_eq!(
            (d.allowed, d.retry_after, d.reason),
            (false, None, Reason::KeyTooLong),
            "key {i}"
        );
        let r = limiter.reserve(&*key, 1, Some(Duration::ZERO)).unwrap();
        assert_eq!(r.reason(), Reason::KeyTooLong);
        assert_eq!(r.retry_after(), None);
    }
}

#[test]
fn long_keys_are_refused_and_never_stored() {
    let limiter = hourly(10_000);
    flood(&limiter, 2_000);
    assert_eq!(limiter.len(), 0);
    assert_eq!(limiter.capacity(), 0, "no table was even allocated");
    // At the bound, stored; one byte over, refused.
    let at = "x".repeat(DEFAULT_MAX_KEY_LEN);
    assert!(limiter.check(&*at).allowed);
    let over = "x".repeat(DEFAULT_MAX_KEY_LEN + 1);
    assert_eq!(limiter.check(&*over).reason, Reason::KeyTooLong);
    assert_eq!(limiter.len(), 1);
    assert_eq!(limiter.max_key_len(), 256);
}

#[test]
fn fixed_size_keys_own_no_bytes() {
    assert_eq!(u64::MAX.heap_bytes(), 0);
    assert_eq!(IpAddr::V6(Ipv6Addr::LOCALHOST).heap_bytes(), 0);
    assert_eq!((7u32, "tenant").heap_bytes(), 6);
    assert_eq!(b"bytes".to_vec().heap_bytes(), 5);
    // Even a bound of zero lets integer and IP keys through.
    let by_ip =
        KeyedLimiter::<IpAddr, _>::builder(TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap())
            .max_key_len(0)
            .build();
    assert!(by_ip.check(&IpAddr::V6(Ipv6Addr::LOCALHOST)).allowed);
    let tuples = KeyedLimiter::<(u32, String), _>::builder(
        TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap(),
    )
    .max_key_len(4)
    .build();
    assert!(tuples.check(&(1, "abcd".to_owned())).allowed);
    assert_eq!(
        tuples.check(&(1, "abcde".to_owned())).reason,
        Reason::KeyTooLong
    );
}

/// The resident memory of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

const KEYS: usize = 20_000;

/// The child's side of [`memory_is_bounded_in_bytes`]: run only when the
/// parent starts this binary with `RATELIMIT_RSS_CHILD` set; prints the
/// growth of resident memory across the flood of long keys, then across
/// `KEYS` keys of the longest length allowed, each kept live.
#[test]
fn rss_child() {
    if std::env::var_os("RATELIMIT_RSS_CHILD").is_none() {
        return;
    }
    // Room for twice the keys, so that no shard fills up first.
    let limiter = hourly(2 * KEYS);
    let mut key = "k".repeat(390 * 1024);
    let start = rss();
    flood(&limiter, 2_000);
    let after_flood = rss();
    key.clear();
    key.shrink_to_fit();
    let before = rss();
    let mut key = "x".repeat(DEFAULT_MAX_KEY_LEN);
    for i in 0..KEYS {
        key.replace_range(..8, &format!("{i:08}"));
        assert!(limiter.check(&*key).allowed, "key {i}");
    }
    let after = rss();
    println!(
        "rss flood={} full={} keys={}",
        after_flood.saturating_sub(start),
        after.saturating_sub(before),
        limiter.len()
    );
}

/// The bound of the README, per key held: the table's slot (a `String` key
/// and an 8-byte word, plus a control byte) at the lowest load a grown
/// table has (7/16), the key's bytes, and the allocator's 16 bytes per
/// allocation. (A limiter holds at most `max_keys` keys, hence the bound
/// in bytes: `max_keys ×` this.)
fn bound_per_key() -> f64 {
    let entry = core::mem::size_of::<(String, u64)>() as f64 + 1.0;
    entry * 16.0 / 7.0 + DEFAULT_MAX_KEY_LEN as f64 + 16.0
}

#[cfg(target_os = "linux")]
#[test]
fn memory_is_bounded_in_bytes() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rss_child", "--nocapture", "--test-threads", "1"])
        .env("RATELIMIT_RSS_CHILD", "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness may print it after "test rss_child ... " on one line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("rss flood=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no rss line in {stdout}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(field("keys"), KEYS as u64);
    // The flood of 2 000 × 390 KB keys (780 MB) stored nothing: well under
    // one megabyte (a page here and there for the test's own bookkeeping).
    assert!(field("flood") < 1 << 20, "{line}");
    // 20 000 keys of 256 bytes, live: within the stated bound (≈ 6.9 MB),
    // with one megabyte of slack for the allocator's own pages.
    let bound = (bound_per_key() * KEYS as f64) as u64 + (1 << 20);
    assert!(field("full") <= bound, "{line}: bound {bound}");
    // And not trivially: the keys' bytes alone are 5 MB.
    assert!(
        field("full") >= (KEYS * DEFAULT_MAX_KEY_LEN) as u64,
        "{line}"
    );
}
