//! Criterion benches of the dashboard's recorder (issue 12's goal: at most
//! 10 ns per decision in memory): `record` of an allowed decision, of a
//! denial of one of 16 keys (the sketch finds it), of a denial of a key
//! never seen among 10 000 (the sketch replaces its smallest slot), and
//! a memory limiter's check through the layer's `Limiter` trait with and
//! without the `Recorded` wrapper.
//!
//! `cargo bench -p ratelimit-bench --bench dashboard`

use core::future::Future;
use core::hint::black_box;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ratelimit_core::{Decision, Reason};
use ratelimit_dashboard::{Recorded, Recorder};
use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
use ratelimit_tower::Limiter;

fn decision(allowed: bool) -> Decision {
    Decision {
        allowed,
        remaining: u64::from(allowed),
        retry_after: (!allowed).then_some(Duration::from_millis(10)),
        reset_after: Duration::from_millis(100),
        limit: 10,
        reason: Reason::Quota,
    }
}

/// The output of a future that is ready at once (the memory limiter's).
fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the memory limiter answers at once"),
    }
}

fn recorder(c: &mut Criterion) {
    let mut group = c.benchmark_group("dashboard/record");
    group.throughput(Throughput::Elements(1));
    let allowed = decision(true);
    let denied = decision(false);

    // The floor: one relaxed fetch_add, what an allowed decision costs at
    // best (the machine's noise shows here too).
    let counter = core::sync::atomic::AtomicU64::new(0);
    group.bench_function(BenchmarkId::new("floor", "fetch_add"), |b| {
        b.iter(|| black_box(&counter).fetch_add(1, core::sync::atomic::Ordering::Relaxed));
    });

    let r = Recorder::new();
    group.bench_function(BenchmarkId::new("ratelimit", "allowed"), |b| {
        b.iter(|| r.record(black_box("tenant-00042"), black_box(&allowed)));
    });

    let r = Recorder::new();
    let hot: Vec<String> = (0..16).map(|i| format!("tenant-{i:05}")).collect();
    let mut i = 0;
    group.bench_function(BenchmarkId::new("ratelimit", "denied_16_keys"), |b| {
        b.iter(|| {
            i = (i + 1) & 15;
            r.record(black_box(hot[i].as_str()), black_box(&denied));
        });
    });

    let r = Recorder::new();
    let cold: Vec<String> = (0..10_000).map(|i| format!("tenant-{i:05}")).collect();
    let mut i = 0;
    group.bench_function(BenchmarkId::new("ratelimit", "denied_10k_keys"), |b| {
        b.iter(|| {
            i = (i + 1) % cold.len();
            r.record(black_box(cold[i].as_str()), black_box(&denied));
        });
    });
    group.finish();

    let mut group = c.benchmark_group("dashboard/layer_check");
    group.throughput(Throughput::Elements(1));
    let quota =
        || TokenBucket::with_rate(1 << 42, Rate::per_second(1_000_000_000)).expect("a quota");
    let plain = KeyedLimiter::<String, _>::with_algorithm(quota());
    let key = String::from("tenant-00042");
    group.bench_function(BenchmarkId::new("memory", "plain"), |b| {
        b.iter(|| now(Limiter::check(&plain, black_box(key.clone()), 1)));
    });
    let recorded = Recorded::new(
        KeyedLimiter::<String, _>::with_algorithm(quota()),
        &Recorder::new(),
    );
    group.bench_function(BenchmarkId::new("memory", "recorded"), |b| {
        b.iter(|| now(Limiter::check(&recorded, black_box(key.clone()), 1)));
    });
    group.finish();
}

criterion_group!(benches, recorder);
criterion_main!(benches);
