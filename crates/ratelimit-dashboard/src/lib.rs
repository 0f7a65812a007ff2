//! An operator's dashboard for the project's rate limiters: who is being
//! limited, right now, in this process or across a fleet sharing a Redis
//! prefix.
//!
//! - [`Recorder`]: opt-in, fixed-memory numbers: decisions per second by
//!   outcome and the most denied keys over a sliding span (a Space-Saving
//!   sketch). Feed it with [`Recorder::record`] after any limiter's
//!   decision, or (feature `tower`) wrap the layer's limiter in
//!   `Recorded`.
//! - `Dashboard` (feature `tower`): a tower service serving one HTML
//!   page (its chart, tables and script embedded, no network needed) and
//!   its JSON, to mount at e.g. `/ratelimit/`. Read-only; loopback peers
//!   only unless a bearer token is set.
//! - `Publisher` and `Fleet` (feature `redis`): processes publish
//!   their numbers to Redis at a low fixed rate; the fleet view merges
//!   them and samples the limiters' keys with `SCAN`.
//! - `serve` (feature `server`): the page on a TCP listener (what
//!   `ratelimit dashboard` runs).
//!
//! See `docs/operations.md` for the panels, the mounting and the costs.

#[cfg(feature = "redis")]
mod fleet;
mod key;
#[cfg(feature = "tower")]
mod layer;
mod recorder;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "tower")]
mod service;
mod sketch;
mod snapshot;

#[cfg(feature = "redis")]
pub use crate::fleet::{Fleet, FleetError, Publisher, merge, publish, read};
pub use crate::key::{INLINE_KEY_BYTES, KeySnap, RecordKey};
#[cfg(feature = "tower")]
pub use crate::layer::{OneLimit, Recorded, RecordedFuture};
pub use crate::recorder::{Options, Outcome, Recorder};
#[cfg(feature = "server")]
pub use crate::server::{serve, serve_blocking};
#[cfg(feature = "tower")]
pub use crate::service::{Access, Dashboard, Source};
pub use crate::snapshot::{Counts, QuotaInfo, RedisKeyInfo, RedisView, Second, Snapshot, TopKey};
