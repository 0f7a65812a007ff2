//! The constants of the blob's layout (described in `format.rs`), shared
//! by the encoder (`build.rs`, which includes this file) and the decoder.

/// The blob's first bytes.
pub(crate) const MAGIC: &[u8; 4] = b"RLC1";
/// The byte after the last scenario.
pub(crate) const END: u8 = 0xFF;

/// Flag: the event is a `reserve` (else a `check`).
pub(crate) const RESERVE: u8 = 1 << 0;
/// Flag: the expected answer allows (admits) the request.
pub(crate) const ALLOWED: u8 = 1 << 1;
/// Flag: a `reserve` with a `max_wait_ns` (else unbounded).
pub(crate) const MAX_WAIT: u8 = 1 << 2;
/// Flag: the expected `retry_after_ns` is present (else null).
pub(crate) const RETRY_AFTER: u8 = 1 << 3;
/// The key index: bits 4 to 6.
pub(crate) const KEY_SHIFT: u32 = 4;
/// Flag: time advanced since the previous event (`dt` follows).
pub(crate) const ADVANCE: u8 = 1 << 7;
/// Keys per scenario, at most.
pub(crate) const MAX_KEYS: usize = 8;
