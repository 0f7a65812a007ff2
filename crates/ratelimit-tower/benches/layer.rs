//! The layer's per-request cost (work in progress).
fn main() {}
