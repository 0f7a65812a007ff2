//! Criterion benches of the core layer: the pure algorithm step, beside
//! the naive float step of the Python design.
//!
//! `cargo bench -p ratelimit-bench --bench core`

mod common;

use core::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ratelimit_core::{Algorithm, LeakyBucket, Rate, Shaping, TokenBucket};

fn core(c: &mut Criterion) {
    common::layer(c, "core");
    // The other pure steps, this project only.
    let token = TokenBucket::with_rate(1 << 42, Rate::per_second(1_000_000_000)).expect("quota");
    let leaky = LeakyBucket::with_rate(1 << 42, Rate::per_second(1_000_000_000)).expect("quota");
    let mut group = c.benchmark_group("core/steps");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("leaky_bucket_check", "keys=1"), |b| {
        let (mut tat, mut now) = (0_u64, 0_u64);
        b.iter(|| {
            now += 3;
            let step = black_box(&leaky)
                .check(tat, black_box(now), 1)
                .expect("cost");
            tat = step.next.unwrap_or(tat);
            step.decision
        });
    });
    group.bench_function(BenchmarkId::new("token_bucket_reserve", "keys=1"), |b| {
        let (mut tat, mut now) = (0_u64, 0_u64);
        b.iter(|| {
            now += 3;
            let step = black_box(&token)
                .reserve(tat, black_box(now), 1, None)
                .expect("cost");
            tat = step.next.unwrap_or(tat);
            step.decision
        });
    });
    group.bench_function(BenchmarkId::new("leaky_bucket_reserve", "keys=1"), |b| {
        let (mut tat, mut now) = (0_u64, 0_u64);
        b.iter(|| {
            now += 3;
            let step = black_box(&leaky)
                .reserve(tat, black_box(now), 1, None)
                .expect("cost");
            tat = step.next.unwrap_or(tat);
            step.decision
        });
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
