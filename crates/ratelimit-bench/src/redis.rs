//! The extension point for the Redis backend's rows.
//!
//! `crates/ratelimit-redis` is not benchmarked yet. When it is, this
//! module starts its own `redis-server` on a free local port (never the
//! shared one on 6379), builds the Redis limiter, measures its shapes with
//! [`measure_rows`] and returns them; the table prints them after the
//! memory rows, with shapes named `redis/<scenario>`. Until then, and on a
//! machine without `redis-server`, it returns the reason it skipped, which
//! the report prints.

use crate::measure::{self, Settings, Worker};
use crate::report::Row;

/// The Redis rows of the comparison, or why there are none.
///
/// # Errors
/// The reason the Redis rows are skipped (printed under SKIPPED).
pub fn rows(settings: &Settings) -> Result<Vec<Row>, String> {
    let _ = settings;
    if !on_path("redis-server") {
        return Err("redis-server not on PATH".to_owned());
    }
    Err("the Redis backend has no benchmark yet (extension point: crates/ratelimit-bench/src/redis.rs)"
        .to_owned())
}

/// Measures named workers the way the comparison measures its own cases
/// (calibrated batches, `settings.rounds` samples, medians), for backends
/// benchmarked outside the main interleaved loop.
#[must_use]
pub fn measure_rows(
    settings: &Settings,
    cases: Vec<(String, String, Vec<Worker<'static>>)>,
) -> Vec<Row> {
    cases
        .into_iter()
        .map(|(shape, implementation, mut workers)| {
            let batch = measure::calibrate(&mut workers[0], settings.batch);
            let samples: Vec<measure::Sample> = (0..settings.rounds)
                .map(|_| measure::sample(&mut workers, batch, settings))
                .collect();
            let pick = |f: fn(&measure::Sample) -> f64| {
                let mut v: Vec<f64> = samples.iter().map(f).collect();
                measure::median(&mut v)
            };
            Row {
                shape,
                implementation,
                threads: workers.len(),
                keys: 1,
                mean_ns: pick(|s| s.mean_ns),
                p99_ns: pick(|s| s.p99_ns),
                ops_per_s: pick(|s| s.ops_per_s),
                batch,
                vs_governor: None,
                note: None,
            }
        })
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
