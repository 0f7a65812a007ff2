//! The API gateway example (work in progress).
fn main() {}
