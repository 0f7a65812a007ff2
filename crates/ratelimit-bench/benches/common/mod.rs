//! What both bench targets share: one criterion group per shape, one
//! function per implementation, measured through `iter_custom` with the
//! same workers as the comparison table.

use criterion::{BenchmarkId, Criterion, Throughput};
use ratelimit_bench::measure::run_together;
use ratelimit_bench::shapes::Fixture;
use ratelimit_bench::{Implementation, Shape};

/// Benches every shape of `layer` for every implementation that has it.
pub(crate) fn layer(c: &mut Criterion, layer: &str) {
    let fixture = Fixture::new();
    for shape in Shape::ALL.into_iter().filter(|s| s.layer() == layer) {
        let mut group = c.benchmark_group(shape.id());
        // One iteration runs one operation on each thread.
        group.throughput(Throughput::Elements(shape.threads() as u64));
        for implementation in Implementation::ALL {
            let Some(mut workers) = implementation.workers(shape, &fixture) else {
                continue;
            };
            let id = BenchmarkId::new(implementation.slug(), shape.parameter());
            group.bench_function(id, |b| {
                b.iter_custom(|iters| run_together(&mut workers, iters))
            });
        }
        group.finish();
    }
}
