//! Runs a fixed number of operations of one shape for one implementation,
//! for counting instructions and cache misses per operation under
//! `valgrind --tool=cachegrind` (the timings of a shared machine are noisy;
//! instruction and simulated-miss counts are not). Run it twice with
//! different counts and divide the difference by the difference of the
//! counts, so that building the keys and the limiter cancels out:
//!
//! ```text
//! cargo build --release -p ratelimit-bench --example ops
//! valgrind --tool=cachegrind --cache-sim=yes target/release/examples/ops memory/keyed_1m ratelimit 1000000
//! ```

use ratelimit_bench::shapes::Fixture;
use ratelimit_bench::{Implementation, Shape};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, implementation, count] = args.as_slice() else {
        eprintln!("usage: ops SHAPE_ID IMPLEMENTATION_NAME COUNT");
        std::process::exit(2);
    };
    let Some(shape) = Shape::ALL.into_iter().find(|s| s.id() == shape) else {
        eprintln!("unknown shape {shape:?}");
        std::process::exit(2);
    };
    let Some(implementation) = Implementation::ALL
        .into_iter()
        .find(|i| i.name() == implementation)
    else {
        eprintln!("unknown implementation {implementation:?}");
        std::process::exit(2);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let fixture = Fixture::new();
    let Some(mut workers) = implementation.workers(shape, &fixture) else {
        eprintln!("{} has no {}", implementation.name(), shape.id());
        std::process::exit(1);
    };
    drop(fixture);
    // One thread: the first worker.
    workers[0](count);
}
