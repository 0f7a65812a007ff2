//! Benchmarks of the rate limiters and the PERFORMANCE COMPARISON table.
//!
//! `cargo xtask bench` runs the `compare` binary of this crate: every
//! [`Shape`] for every [`Implementation`] (this project, `governor`, a
//! naive `Mutex<HashMap>` port of the Python design, and the floors: a
//! clock read and an uncontended compare-and-swap) in one process and one
//! run, so that the ratios to governor mean something on a noisy machine.
//! It prints the table and writes it, with the same figures as JSON, under
//! `target/bench/`. The criterion benches (`cargo bench -p
//! ratelimit-bench`) cover the same layers for closer study.
//!
//! The crate is not published; its API serves the binary and the benches.

pub mod compare;
pub mod contenders;
pub mod keys;
pub mod machine;
pub mod measure;
pub mod naive;
pub mod redis;
pub mod report;
pub mod rss;
pub mod shapes;

pub use crate::compare::{Config, run};
pub use crate::contenders::Implementation;
pub use crate::report::Report;
pub use crate::shapes::Shape;
