//! The conformance scenarios of `shared/conformance/`: worked examples of
//! the contract, each a fresh limiter, a list of events and the expected
//! output for each.

use core::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;

use ratelimit_core::{AlgorithmKind, ConfigError, Quota, Rate};
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
    /// `token-bucket` or `leaky-bucket`.
    pub algorithm: String,
    /// The capacity `C`.
    pub capacity: u64,
    /// The rate in units per second, as written in the file.
    pub rate: serde_json::Number,
    /// The events, in time order.
    pub events: Vec<Event>,
    /// One expected output object per event.
    pub expected: Vec<Value>,
}

impl Scenario {
    /// The algorithm the scenario runs.
    ///
    /// # Panics
    /// On an algorithm name other than the two of the contract.
    #[must_use]
    pub fn kind(&self) -> AlgorithmKind {
        match self.algorithm.as_str() {
            "token-bucket" => AlgorithmKind::TokenBucket,
            "leaky-bucket" => AlgorithmKind::LeakyBucket,
            other => panic!("scenario {}: unknown algorithm {other:?}", self.id),
        }
    }

    /// The rate, parsed exactly from its decimal text.
    pub fn parsed_rate(&self) -> Result<Rate, ConfigError> {
        self.rate.to_string().parse()
    }

    /// The scenario's quota.
    pub fn quota(&self) -> Result<Quota, ConfigError> {
        Quota::new(self.capacity, self.parsed_rate()?)
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

/// Runs `run(file, scenario)` on every scenario of both conformance files
/// (each with a fresh backend, which `run` builds) and panics with every
/// mismatch if there is any, or if not all 180 scenarios ran.
///
/// # Panics
/// On a mismatch, a missing or unreadable file, or a scenario count other
/// than 180.
pub fn assert_every_scenario(mut run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for file in CONFORMANCE_FILES {
        for scenario in load_scenarios(file).expect("the conformance files are present") {
            if let Err(m) = run(file, &scenario) {
                failures.push(format!("{file}: {m}"));
            }
            count += 1;
        }
    }
    assert_eq!(count, 180, "both files, 90 scenarios each");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
