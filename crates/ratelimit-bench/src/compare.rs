//! The comparison: every shape for every implementation, in one process
//! and one run, measured as [`measure`] describes.

use std::path::Path;
use std::time::Instant;

use crate::contenders::Implementation;
use crate::machine::Machine;
use crate::measure::{self, Settings, Worker};
use crate::report::{MemoryRow, Report, Row, Target};
use crate::shapes::{Fixture, Shape};
use crate::{http, outage, redis, redis_scale, rss};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sample lengths and rounds.
    pub settings: Settings,
    /// Whether this is the `--quick` smoke run (noted in the report).
    pub quick: bool,
    /// Keys for the bytes-per-key measurement; 0 skips it.
    pub memory_keys: usize,
    /// Only the shapes whose id contains this text (all when `None`): for
    /// studying one shape, e.g. under a profiler.
    pub only: Option<String>,
}

impl Config {
    /// The full run, or the quick one.
    #[must_use]
    pub fn new(quick: bool) -> Self {
        Self {
            settings: if quick {
                Settings::QUICK
            } else {
                Settings::FULL
            },
            quick,
            memory_keys: 1_000_000,
            only: None,
        }
    }
}

/// A shape run by one implementation, with its calibrated batch size and
/// the samples of every round.
pub struct Case {
    /// The shape.
    pub shape: Shape,
    /// The implementation.
    pub implementation: Implementation,
    workers: Vec<Worker<'static>>,
    batch: u64,
    samples: Vec<measure::Sample>,
}

impl core::fmt::Debug for Case {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Case")
            .field("shape", &self.shape)
            .field("implementation", &self.implementation)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// Runs the comparison. `exe` is an executable that answers
/// `--rss-child` (see [`rss`]); `log` receives progress lines.
pub fn run(config: &Config, exe: &Path, mut log: impl FnMut(&str)) -> Report {
    let started = Instant::now();
    let settings = config.settings;
    log("building keys and limiters (1 000 000 keys pre-inserted per keyed limiter)");
    let fixture = Fixture::new();
    let shapes: Vec<Shape> = Shape::ALL
        .into_iter()
        .filter(|s| {
            config
                .only
                .as_deref()
                .is_none_or(|only| s.id().contains(only))
        })
        .collect();
    let mut cases: Vec<Case> = Vec::new();
    for &shape in &shapes {
        for implementation in Implementation::ALL {
            if let Some(mut workers) = implementation.workers(shape, &fixture) {
                let batch = measure::calibrate(&mut workers[0], settings.batch);
                cases.push(Case {
                    shape,
                    implementation,
                    workers,
                    batch,
                    samples: Vec::with_capacity(settings.rounds),
                });
            }
        }
    }
    drop(fixture);
    log(&format!(
        "{} cases, {} rounds of {} ms each",
        cases.len(),
        settings.rounds,
        settings.sample.as_millis()
    ));
    for round in 0..settings.rounds {
        for &shape in &shapes {
            let mut group: Vec<&mut Case> = cases.iter_mut().filter(|c| c.shape == shape).collect();
            // Rotate who goes first each round, so no implementation always
            // runs right after the same neighbour or at the same point of
            // a drift.
            let len = group.len().max(1);
            group.rotate_left(round % len);
            for case in group {
                let s = measure::sample(&mut case.workers, case.batch, &settings);
                case.samples.push(s);
            }
        }
        log(&format!("round {}/{} done", round + 1, settings.rounds));
    }
    let mut rows: Vec<Row> = Vec::new();
    for &shape in &shapes {
        for implementation in Implementation::ALL {
            match cases
                .iter()
                .find(|c| c.shape == shape && c.implementation == implementation)
            {
                Some(case) => rows.push(row(case)),
                None => {
                    if let Some(why) = implementation.missing(shape) {
                        rows.push(missing_row(shape, implementation, why));
                    }
                }
            }
        }
    }
    drop(cases);
    add_ratios(&mut rows);
    let mut skipped = Vec::new();
    match redis::rows(&settings) {
        Ok(redis_rows) => rows.extend(redis_rows),
        Err(why) => skipped.push(("redis rows".to_owned(), why)),
    }
    if config
        .only
        .as_deref()
        .is_none_or(|only| "redis/".contains(only) || only.starts_with("redis/"))
    {
        match redis_scale::rows(&settings) {
            Ok(scale_rows) => rows.extend(scale_rows),
            Err(why) => skipped.push(("redis scale rows".to_owned(), why)),
        }
    }
    match outage::rows(&config.settings, config.only.as_deref()) {
        Ok(outage_rows) => rows.extend(outage_rows),
        Err(why) => skipped.push(("outage rows".to_owned(), why)),
    }
    match http::rows(&config.settings, config.only.as_deref()) {
        Ok(http_rows) => rows.extend(http_rows),
        Err(why) => skipped.push(("http rows".to_owned(), why)),
    }
    log("measuring bytes per key in child processes");
    let memory: Vec<MemoryRow> = rss::MEASURED
        .iter()
        .map(|&which| (rss::child_name(which), which.name()))
        .chain(
            rss::STRING_CHILDREN
                .into_iter()
                .map(Ok)
                .zip(rss::STRING_NAMES),
        )
        .filter(|_| config.memory_keys > 0)
        .map(|(child, name)| {
            let result = rss::measure(exe, child, name, config.memory_keys);
            MemoryRow {
                implementation: name.to_owned(),
                keys: result.as_ref().map_or(config.memory_keys, |r| r.keys),
                detail: result.as_ref().ok().and_then(|r| r.detail.clone()),
                bytes_per_key: result.map(|r| r.bytes_per_key),
            }
        })
        .collect();
    let mut targets = targets(&rows, &memory);
    targets.extend(http::targets(&rows));
    targets.extend(redis::targets(&rows));
    targets.extend(redis_scale::targets(&rows));
    targets.extend(outage::targets(&rows));
    Report {
        machine: Machine::detect(),
        settings,
        quick: config.quick,
        rows,
        memory,
        memory_method: format!(
            "bytes per key at {} u64 keys (String rows: 12-byte String keys): {}",
            config.memory_keys,
            rss::METHOD
        ),
        targets,
        shapes: shapes
            .iter()
            .map(|s| (s.id().to_owned(), s.describe().to_owned()))
            .collect(),
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn row(case: &Case) -> Row {
    let pick = |f: fn(&measure::Sample) -> f64| {
        let mut v: Vec<f64> = case.samples.iter().map(f).collect();
        measure::median(&mut v)
    };
    Row {
        shape: case.shape.id().to_owned(),
        implementation: case.implementation.name().to_owned(),
        threads: case.shape.threads(),
        keys: case.shape.keys(),
        mean_ns: pick(|s| s.mean_ns),
        p99_ns: pick(|s| s.p99_ns),
        ops_per_s: pick(|s| s.ops_per_s),
        batch: case.batch,
        vs_governor: None,
        note: None,
    }
}

/// A row saying why an implementation has no figure for a shape.
fn missing_row(shape: Shape, implementation: Implementation, why: &str) -> Row {
    Row {
        shape: shape.id().to_owned(),
        implementation: implementation.name().to_owned(),
        threads: shape.threads(),
        keys: shape.keys(),
        mean_ns: f64::NAN,
        p99_ns: f64::NAN,
        ops_per_s: f64::NAN,
        batch: 0,
        vs_governor: None,
        note: Some(why.to_owned()),
    }
}

/// Fills `vs_governor` for every non-governor row of a shape governor ran.
fn add_ratios(rows: &mut [Row]) {
    let governor: Vec<(String, f64, f64)> = rows
        .iter()
        .filter(|r| r.implementation == Implementation::Governor.name() && r.mean_ns.is_finite())
        .map(|r| (r.shape.clone(), r.mean_ns, r.ops_per_s))
        .collect();
    for r in rows.iter_mut() {
        if r.implementation == Implementation::Governor.name() {
            continue;
        }
        if let Some((_, mean, ops)) = governor.iter().find(|(s, _, _)| *s == r.shape) {
            r.vs_governor = Some(if r.threads > 1 {
                ops / r.ops_per_s
            } else {
                r.mean_ns / mean
            });
        }
    }
}

/// The targets, read off the rows.
fn targets(rows: &[Row], memory: &[MemoryRow]) -> Vec<Target> {
    let ours_row = |shape: Shape| {
        rows.iter()
            .find(|r| r.shape == shape.id() && r.implementation == Implementation::Ratelimit.name())
    };
    let ours = |shape: Shape| ours_row(shape).and_then(|r| r.vs_governor);
    let ratio = |name: &str, shape: Shape, bound: f64| {
        let value = ours(shape);
        Target {
            name: format!("{name} ({}), time vs governor", shape.id()),
            value,
            bound: format!("<= {bound:.2}"),
            met: value.map(|v| v <= bound),
        }
    };
    let ops = |name: &str, shape: Shape, bound: f64| {
        let value = ours(shape).map(|x| 1.0 / x);
        Target {
            name: format!("{name} ({}), ops/s vs governor", shape.id()),
            value,
            bound: format!(">= {bound:.2}"),
            met: value.map(|v| v >= bound),
        }
    };
    // Ours against ours: a shape's mean time over a reference shape's.
    let own = |name: &str, shape: Shape, reference: Shape, bound: f64| {
        let value = match (ours_row(shape), ours_row(reference)) {
            (Some(a), Some(b)) if a.mean_ns.is_finite() && b.mean_ns > 0.0 => {
                Some(a.mean_ns / b.mean_ns)
            }
            _ => None,
        };
        Target {
            name: format!("{name} ({} / {})", shape.id(), reference.id()),
            value,
            bound: format!("<= {bound:.2}"),
            met: value.map(|v| v <= bound),
        }
    };
    let bytes = |name: &str| {
        memory
            .iter()
            .find(|m| m.implementation == name)
            .and_then(|m| m.bytes_per_key.as_ref().ok().copied())
    };
    let bytes_u64 = bytes(Implementation::Ratelimit.name());
    let bytes_string = bytes(rss::STRING_NAMES[0]);
    let bytes_string_governor = bytes(rss::STRING_NAMES[1]);
    vec![
        ratio("single key, allowed", Shape::CheckOneKey, 1.0),
        ratio("single key, denied", Shape::CheckOneKeyDenied, 1.0),
        ratio("single key, cost 4", Shape::CheckNOneKey, 1.0),
        ratio("keyed, 10 000 keys", Shape::Keyed10k, 0.5),
        ratio("keyed, 1 000 000 keys", Shape::Keyed1m, 0.5),
        ratio(
            "returning, 10 000 String keys",
            Shape::ReturningStrings10k,
            0.5,
        ),
        ratio(
            "returning, 1 000 000 String keys",
            Shape::ReturningStrings1m,
            0.5,
        ),
        ratio("returning, 1 000 000 u64 keys", Shape::Returning1m, 0.5),
        ops("2 threads, one key", Shape::OneKeyTwoThreads, 1.0),
        ops(
            "2 threads, distinct keys",
            Shape::DistinctKeysTwoThreads,
            1.5,
        ),
        Target {
            name: "bytes per key at 1 000 000 u64 keys".to_owned(),
            value: bytes_u64,
            bound: "<= 24".to_owned(),
            met: bytes_u64.map(|b| b <= 24.0),
        },
        Target {
            name: "bytes per key at 1 000 000 String keys (12 bytes of text), vs governor's"
                .to_owned(),
            value: bytes_string,
            bound: bytes_string_governor.map_or_else(
                || "<= governor's (not measured)".to_owned(),
                |g| format!("<= {g:.1}"),
            ),
            met: bytes_string.zip(bytes_string_governor).map(|(b, g)| b <= g),
        },
        own(
            "fixed window, one key",
            Shape::FixedWindowOneKey,
            Shape::CheckOneKey,
            1.2,
        ),
        own(
            "sliding window, one key",
            Shape::SlidingWindowOneKey,
            Shape::CheckOneKey,
            1.2,
        ),
        own(
            "fixed window, 10 000 keys",
            Shape::FixedWindowKeyed10k,
            Shape::Keyed10k,
            1.2,
        ),
        own(
            "sliding window, 10 000 keys",
            Shape::SlidingWindowKeyed10k,
            Shape::Keyed10k,
            1.2,
        ),
        own(
            "fixed window, 1 000 000 keys",
            Shape::FixedWindowKeyed1m,
            Shape::Keyed1m,
            1.2,
        ),
        own(
            "sliding window, 1 000 000 keys",
            Shape::SlidingWindowKeyed1m,
            Shape::Keyed1m,
            1.2,
        ),
        own("2 limits", Shape::CheckAll2, Shape::CheckOneKey, 2.0),
        own("3 limits", Shape::CheckAll3, Shape::CheckOneKey, 3.0),
        own(
            "first check after reconfiguring 1 000 000 keys",
            Shape::Keyed1mAfterReconfigure,
            Shape::Keyed1m,
            2.0,
        ),
    ]
}
