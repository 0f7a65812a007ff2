//! How a figure is measured: per-operation time from batches of `N`
//! operations, timed with `Instant` around each batch.
//!
//! A *sample* runs one case for a fixed wall time after a warm-up and
//! yields the mean of its batch means (per-op time), their 99th percentile
//! and the total throughput. The comparison repeats every case over several
//! *rounds*, interleaving the implementations of a shape in a rotating
//! order, and reports the median over rounds of each figure, so that slow
//! drift on a shared machine biases no implementation more than another.
//!
//! A case with several workers runs them on scoped threads that start
//! together behind a barrier and stop together on a flag; its mean and p99
//! are the per-op latency one thread sees, its throughput the total over
//! all threads.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Barrier;
use std::time::Instant;

/// One thread's work: run the operation `n` times.
pub type Worker<'a> = Box<dyn FnMut(u64) + Send + 'a>;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Rounds over all cases; figures are medians over rounds.
    pub rounds: usize,
    /// Measured time per case per round.
    pub sample: Duration,
    /// Unmeasured time run before each sample.
    pub warmup: Duration,
    /// A batch is sized (once per case) to take at least this long, so the
    /// two clock reads around it cost well under 1 %.
    pub batch: Duration,
}

impl Settings {
    /// The full run: a few minutes for the whole comparison.
    pub const FULL: Self = Self {
        rounds: 7,
        sample: Duration::from_millis(300),
        warmup: Duration::from_millis(30),
        batch: Duration::from_micros(20),
    };

    /// CI's smoke run: the same cases, far shorter samples.
    pub const QUICK: Self = Self {
        rounds: 3,
        sample: Duration::from_millis(25),
        warmup: Duration::from_millis(5),
        batch: Duration::from_micros(20),
    };
}

/// The figures of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Mean time per operation, as one thread sees it, in nanoseconds.
    pub mean_ns: f64,
    /// 99th percentile of the batch means, in nanoseconds per operation.
    pub p99_ns: f64,
    /// Operations per second, all threads together.
    pub ops_per_s: f64,
    /// Operations measured, all threads together.
    pub ops: u64,
}

/// Finds a batch size `n` such that `n` operations take at least `target`
/// (doubling from 1), running the first worker alone.
pub fn calibrate(worker: &mut Worker<'_>, target: Duration) -> u64 {
    let mut n = 1_u64;
    loop {
        let t = Instant::now();
        worker(n);
        let took = t.elapsed();
        if took >= target || n >= 1 << 30 {
            return n;
        }
        // Jump close to the target once the time is measurable.
        let nanos = took.as_nanos().max(1);
        let scale = (target.as_nanos() / nanos).clamp(2, 1024) as u64;
        n = n.saturating_mul(scale);
    }
}

/// Runs one sample of `workers` (one thread each; a single worker runs on
/// the calling thread) in batches of `n` operations.
pub fn sample(workers: &mut [Worker<'_>], n: u64, settings: &Settings) -> Sample {
    let threads = workers.len();
    assert!(threads > 0, "a case needs at least one worker");
    if threads == 1 {
        let run = run_worker(&mut workers[0], n, settings, None);
        return summarize(&[run], n);
    }
    let start = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let (start, stop) = (&start, &stop);
                scope.spawn(move || run_worker(w, n, settings, Some((start, stop))))
            })
            .collect();
        // Two barriers: all warmed up, then all measuring.
        start.wait();
        start.wait();
        std::thread::sleep(settings.sample);
        // Relaxed: the flag carries no data; the joins below synchronise.
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark worker panicked"))
            .collect::<Vec<_>>()
    });
    summarize(&runs, n)
}

/// Runs every worker `iters` times on its own thread (the first on the
/// calling thread when alone), started together behind a barrier, and
/// returns the wall time until the last finished: the `iter_custom` body
/// of the criterion benches.
pub fn run_together(workers: &mut [Worker<'_>], iters: u64) -> Duration {
    if let [only] = workers {
        let t = Instant::now();
        only(iters);
        return t.elapsed();
    }
    let barrier = Barrier::new(workers.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    w(iters);
                    Instant::now()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark worker panicked"))
            .max()
            .map_or(Duration::ZERO, |end| end.saturating_duration_since(start))
    })
}

struct Run {
    batch_ns: Vec<f64>,
    start: Instant,
    end: Instant,
}

fn run_worker(
    worker: &mut Worker<'_>,
    n: u64,
    settings: &Settings,
    together: Option<(&Barrier, &AtomicBool)>,
) -> Run {
    let warm_until = Instant::now() + settings.warmup;
    while Instant::now() < warm_until {
        worker(n);
    }
    if let Some((barrier, _)) = together {
        barrier.wait();
        barrier.wait();
    }
    let start = Instant::now();
    let deadline = start + settings.sample;
    let mut batch_ns = Vec::with_capacity(1024);
    let mut t0 = start;
    loop {
        worker(n);
        let t1 = Instant::now();
        batch_ns.push((t1 - t0).as_nanos() as f64);
        t0 = t1;
        let done = match together {
            Some((_, stop)) => stop.load(Ordering::Relaxed),
            None => t1 >= deadline,
        };
        if done {
            return Run {
                batch_ns,
                start,
                end: t1,
            };
        }
    }
}

fn summarize(runs: &[Run], n: u64) -> Sample {
    let mut per_op: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.batch_ns.iter().map(|b| b / n as f64))
        .collect();
    let batches = per_op.len() as u64;
    let mean_ns = per_op.iter().sum::<f64>() / per_op.len() as f64;
    let p99_ns = percentile(&mut per_op, 0.99);
    let first = runs.iter().map(|r| r.start).min().expect("one run");
    let last = runs.iter().map(|r| r.end).max().expect("one run");
    let ops = batches * n;
    let wall = (last - first).as_secs_f64();
    Sample {
        mean_ns,
        p99_ns,
        ops_per_s: ops as f64 / wall,
        ops,
    }
}

/// The `q` quantile (nearest rank) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The median of `values`, which it sorts.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 1.0), 100.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn samples_one_and_two_threads() {
        let settings = Settings {
            rounds: 1,
            sample: Duration::from_millis(5),
            warmup: Duration::from_millis(1),
            batch: Duration::from_micros(5),
        };
        let mut workers: Vec<Worker<'_>> = vec![Box::new(|n| {
            core::hint::black_box((0..n).sum::<u64>());
        })];
        let n = calibrate(&mut workers[0], settings.batch);
        let one = sample(&mut workers, n, &settings);
        assert!(one.ops > 0 && one.mean_ns > 0.0 && one.p99_ns >= 0.0);
        workers.push(Box::new(|n| {
            core::hint::black_box((0..n).product::<u64>());
        }));
        let two = sample(&mut workers, n, &settings);
        assert!(two.ops > 0 && two.ops_per_s > 0.0);
    }
}
