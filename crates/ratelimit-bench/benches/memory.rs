//! Criterion benches of the memory layer and its floors, with governor
//! and the naive `Mutex<HashMap>` port in the same groups: one key allowed
//! and denied, `check_n`, 10 000 and 1 000 000 keys in random order, two
//! threads on one key and on distinct keys (`iter_custom`), `reserve`, a
//! clock read and an uncontended compare-and-swap.
//!
//! `cargo bench -p ratelimit-bench --bench memory`

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn memory(c: &mut Criterion) {
    common::layer(c, "memory");
    common::layer(c, "floor");
}

criterion_group!(benches, memory);
criterion_main!(benches);
