//! `cargo xtask wasm` (placeholder while the module is written).

pub(crate) fn run(_args: &[String]) -> Result<(), String> {
    Err("not yet".to_owned())
}
