//! The replay format of the contract (`docs/semantics.md`, "Replay
//! format"): JSON Lines of events in, one JSON line of decision out per
//! event, with time taken from the events. It drives `ratelimit replay` (a
//! policy simulator) and the conformance scenarios that hold every backend
//! to the same answers.
//!
//! - [`replay`] runs a stream of [`Event`]s through a [`Backend`] and can
//!   count the decisions in a [`Summary`]: requests (`check`, `reserve`,
//!   possibly carrying a key's own quota) and `reconfigure` events.
//! - [`Model`] is the reference backend, the core's functions over a plain
//!   map; [`Memory`] is the in-memory keyed limiter on a manual clock;
//!   [`visit`] runs generic code over an algorithm chosen at run time.
//! - [`load_scenarios`], [`run_scenario`] and [`assert_scenarios`] run the
//!   conformance files that this crate carries in `conformance/`
//!   ([`BUCKET_FILES`], [`WINDOW_FILES`], [`POLICY_FILES`]).
//! - [`printable`] escapes text from the input before a person sees it.

#![forbid(unsafe_code)]

mod backend;
mod event;
mod output;
mod run;
mod scenario;
mod summary;
mod text;

pub use crate::backend::{
    Backend, Memory, Model, NeedsBucket, NotShaping, Replayable, Unsupported, Visit, visit,
};
pub use crate::event::{Event, Op, QuotaSpec, Reconfigure, Request, parse_event};
pub use crate::output::{render_check, render_reserve};
pub use crate::run::{MAX_LINE_BYTES, ReplayError, replay};
pub use crate::scenario::{
    ALL_FILES, BUCKET_FILES, Mismatch, POLICY_FILES, Scenario, WINDOW_FILES,
    assert_every_policy_scenario, assert_every_scenario, assert_every_window_scenario,
    assert_scenarios, conformance_dir, load_scenarios, run_scenario,
};
pub use crate::summary::Summary;
pub use crate::text::printable;
