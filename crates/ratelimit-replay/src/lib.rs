//! The replay format of the project's `SEMANTICS.md`: JSON Lines of events
//! in, one JSON line of decision out per event, with time taken from the
//! events. It drives `ratelimit replay` (a policy simulator) and the
//! conformance scenarios that hold every backend to the same answers.
//!
//! A backend plugs in through [`Backend`]; [`Model`] is the reference one,
//! the core's functions over a plain map.

#![forbid(unsafe_code)]

mod backend;
mod event;
mod output;
mod run;
mod scenario;

pub use crate::backend::{Backend, Memory, Model, NotShaping, Replayable, Visit, visit};
pub use crate::event::{Event, Op, parse_event};
pub use crate::output::{render_check, render_reserve};
pub use crate::run::{ReplayError, Summary, replay};
pub use crate::scenario::{
    CONFORMANCE_FILES, Mismatch, Scenario, WINDOW_FILES, assert_every_scenario,
    assert_every_window_scenario, conformance_dir, load_scenarios, run_scenario,
};
