//! `cargo xtask bench`: placeholder until the benchmark driver lands.

pub(crate) fn run(_args: &[String]) -> Result<(), String> {
    Err("bench is not implemented yet".to_owned())
}
