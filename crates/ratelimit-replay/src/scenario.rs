//! The conformance scenarios of `shared/conformance/`: worked examples of
//! the contract, each a fresh limiter, a list of events and the expected
//! output for each.

use core::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use core::time::Duration;

use ratelimit_core::{AlgorithmKind, AnyAlgorithm, ConfigError, Quota, Rate};
use serde::Deserialize;
use serde_json::Value;

use crate::backend::Backend;
use crate::event::Event;
use crate::run::answer;

/// One scenario: a limiter's parameters, events, and the answers due.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// The scenario's number within its file.
    pub id: u64,
    /// `token-bucket`, `leaky-bucket`, `fixed-window` or `sliding-window`.
    pub algorithm: String,
    /// The capacity `C` (a window algorithm's limit `L`).
    pub capacity: u64,
    /// The rate in units per second, as written in the file (buckets).
    #[serde(default)]
    pub rate: Option<serde_json::Number>,
    /// The window `W` in nanoseconds (window algorithms).
    #[serde(default)]
    pub window_ns: Option<u64>,
    /// The events, in time order.
    pub events: Vec<Event>,
    /// One expected output object per event.
    pub expected: Vec<Value>,
}

impl Scenario {
    /// The algorithm the scenario runs.
    ///
    /// # Panics
    /// On an algorithm name other than the four of the contract.
    #[must_use]
    pub fn kind(&self) -> AlgorithmKind {
        self.algorithm
            .parse()
            .unwrap_or_else(|e| panic!("scenario {}: {e}", self.id))
    }

    /// The rate, parsed exactly from its decimal text.
    pub fn parsed_rate(&self) -> Result<Rate, ConfigError> {
        match &self.rate {
            Some(rate) => rate.to_string().parse(),
            None => Err(ConfigError::NeedsRate),
        }
    }

    /// The scenario's quota (buckets).
    pub fn quota(&self) -> Result<Quota, ConfigError> {
        Quota::new(self.capacity, self.parsed_rate()?)
    }

    /// The scenario's algorithm with its parameters: a rate for the
    /// buckets, a window for the window algorithms.
    pub fn any_algorithm(&self) -> Result<AnyAlgorithm, ConfigError> {
        let kind = self.kind();
        match self.window_ns {
            Some(ns) => AnyAlgorithm::with_window(kind, self.capacity, Duration::from_nanos(ns)),
            None => AnyAlgorithm::with_rate(kind, self.capacity, self.parsed_rate()?),
        }
    }
}

/// A backend's answer that differs from the scenario's.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The scenario's id.
    pub id: u64,
    /// The event's index in the scenario.
    pub index: usize,
    /// The event, as parsed.
    pub event: Event,
    /// What the scenario expects.
    pub expected: Value,
    /// What the backend answered (or its error).
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario {} event {}: {:?}\n  expected {}\n  got      {}",
            self.id, self.index, self.event, self.expected, self.got
        )
    }
}

/// Runs `scenario` through `backend` (fresh for this scenario) and compares
/// every answer with the expected one, field by field.
pub fn run_scenario<B: Backend>(scenario: &Scenario, backend: &mut B) -> Result<(), Box<Mismatch>> {
    assert_eq!(
        scenario.events.len(),
        scenario.expected.len(),
        "scenario {}: one expected answer per event",
        scenario.id
    );
    for (index, (event, expected)) in scenario.events.iter().zip(&scenario.expected).enumerate() {
        let mismatch = |got: String| {
            Box::new(Mismatch {
                id: scenario.id,
                index,
                event: event.clone(),
                expected: expected.clone(),
                got,
            })
        };
        let (text, _) =
            answer(backend, event).map_err(|e| mismatch(format!("backend error: {e}")))?;
        let got: Value =
            serde_json::from_str(&text).map_err(|e| mismatch(format!("{text} ({e})")))?;
        if &got != expected {
            return Err(mismatch(text));
        }
    }
    Ok(())
}

/// The folder of the conformance files: `$RATELIMIT_CONFORMANCE_DIR`, or
/// `shared/conformance` beside the workspace.
#[must_use]
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("RATELIMIT_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// Loads every scenario of `file` (`scenarios-ns.jsonl.gz` or
/// `scenarios-us.jsonl.gz`) from [`conformance_dir`].
pub fn load_scenarios(file: &str) -> io::Result<Vec<Scenario>> {
    let path = conformance_dir().join(file);
    let gz = std::fs::File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(gz));
    reader
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(&line?).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })
        })
        .collect()
}

/// The two conformance files: arbitrary nanoseconds, and whole microseconds.
pub const CONFORMANCE_FILES: [&str; 2] = ["scenarios-ns.jsonl.gz", "scenarios-us.jsonl.gz"];

/// The two conformance files of the window algorithms (120 and 60
/// scenarios), which carry `window_ns` instead of `rate`.
pub const WINDOW_FILES: [&str; 2] = ["windows-ns.jsonl.gz", "windows-us.jsonl.gz"];

/// Runs `run(file, scenario)` on every scenario of both bucket conformance
/// files (each with a fresh backend, which `run` builds) and panics with
/// every mismatch if there is any, or if not all 180 scenarios ran.
///
/// # Panics
/// On a mismatch, a missing or unreadable file, or a scenario count other
/// than 180.
pub fn assert_every_scenario(run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    assert_scenarios(&CONFORMANCE_FILES, 180, run);
}

/// [`assert_every_scenario`] for the window algorithms: both window files,
/// 180 scenarios.
///
/// # Panics
/// As for [`assert_every_scenario`].
pub fn assert_every_window_scenario(run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    assert_scenarios(&WINDOW_FILES, 180, run);
}

/// Runs `run` on every scenario of `files`, expecting `count` in all, and
/// panics with every mismatch.
fn assert_scenarios(
    files: &[&str],
    count: usize,
    mut run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>,
) {
    let mut seen = 0;
    let mut failures = Vec::new();
    for file in files {
        for scenario in load_scenarios(file).expect("the conformance files are present") {
            if let Err(m) = run(file, &scenario) {
                failures.push(format!("{file}: {m}"));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, count, "scenarios in {files:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
