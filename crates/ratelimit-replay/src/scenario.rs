//! The conformance scenarios: worked examples of the contract
//! (`docs/semantics.md`), each a fresh limiter, a list of events and the
//! expected output for each. The files live in this crate's
//! `conformance/` folder (see its README); nothing outside the repository
//! is read.

use core::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use core::time::Duration;

use ratelimit_core::{AlgorithmKind, AnyAlgorithm, ConfigError, Quota, Rate};
use serde::Deserialize;
use serde_json::{Number, Value};

use crate::backend::Backend;
use crate::event::Event;
use crate::run::{OwnQuotas, Unanswered, answer};

/// One scenario: a limiter's parameters, events, and the answers due.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's number within its file.
    pub id: u64,
    /// The algorithm's name: `token-bucket`, `leaky-bucket`,
    /// `fixed-window` or `sliding-window`.
    pub algorithm: String,
    /// The capacity `C` (the limit `L` of a window algorithm).
    pub capacity: u64,
    /// The rate in units per second, as written in the file (bucket
    /// algorithms; `None` for window ones).
    #[serde(default)]
    pub rate: Option<Number>,
    /// The window `W` in nanoseconds (window algorithms; `None` for bucket
    /// ones).
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

    /// The rate, parsed exactly from its decimal text (bucket scenarios).
    pub fn parsed_rate(&self) -> Result<Rate, ConfigError> {
        match &self.rate {
            Some(rate) => rate.to_string().parse(),
            None => Err(ConfigError::NeedsRate),
        }
    }

    /// The scenario's quota (bucket scenarios).
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

    /// The rate or window as `ratelimit replay` takes it: `["--rate", R]`
    /// or `["--window", "<W>ns"]`.
    ///
    /// # Panics
    /// On a scenario with neither (only a hand-built one: loading checks).
    #[must_use]
    pub fn limit_args(&self) -> [String; 2] {
        match (&self.rate, self.window_ns) {
            (Some(rate), _) => ["--rate".to_owned(), rate.to_string()],
            (None, Some(w)) => ["--window".to_owned(), format!("{w}ns")],
            (None, None) => panic!("scenario {} has neither a rate nor a window", self.id),
        }
    }

    /// The events as replay input: one JSON line each.
    #[must_use]
    pub fn input(&self) -> String {
        let mut input = String::new();
        for event in &self.events {
            input += &serde_json::to_string(event).expect("an event always serializes");
            input.push('\n');
        }
        input
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
    let mut own = OwnQuotas::default();
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
        let (text, _) = answer(backend, &mut own, event).map_err(|e| match e {
            Unanswered::Backend(e) => mismatch(format!("backend error: {e}")),
            Unanswered::Unsupported(message) => mismatch(format!("not run: {message}")),
        })?;
        let got: Value =
            serde_json::from_str(&text).map_err(|e| mismatch(format!("{text} ({e})")))?;
        if &got != expected {
            return Err(mismatch(text));
        }
    }
    Ok(())
}

/// The folder of the conformance files: `conformance/` in this crate.
#[must_use]
pub fn conformance_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conformance"))
}

/// The bucket scenarios (`token-bucket`, `leaky-bucket`; `check` and
/// `reserve`): arbitrary nanoseconds, and whole microseconds.
pub const BUCKET_FILES: [&str; 2] = ["scenarios-ns.jsonl.gz", "scenarios-us.jsonl.gz"];

/// The window scenarios (`fixed-window`, `sliding-window`; `check` only,
/// `window_ns` instead of `rate`).
pub const WINDOW_FILES: [&str; 2] = ["windows-ns.jsonl.gz", "windows-us.jsonl.gz"];

/// The quota-change scenarios on the buckets: `reconfigure` events and
/// requests that carry a key's own quota.
pub const POLICY_FILES: [&str; 2] = ["policies-ns.jsonl.gz", "policies-us.jsonl.gz"];

/// Every conformance file of the repository.
pub const ALL_FILES: [&str; 6] = [
    BUCKET_FILES[0],
    BUCKET_FILES[1],
    WINDOW_FILES[0],
    WINDOW_FILES[1],
    POLICY_FILES[0],
    POLICY_FILES[1],
];

/// Loads every scenario of `file` (one of [`ALL_FILES`]) from
/// [`conformance_dir`]. Each must have a rate or a window (not both) and
/// one expected answer per event; an error names the file and line.
pub fn load_scenarios(file: &str) -> io::Result<Vec<Scenario>> {
    load_scenarios_from(&conformance_dir().join(file))
}

fn load_scenarios_from(path: &Path) -> io::Result<Vec<Scenario>> {
    let gz = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(gz));
    reader
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let invalid = |message: String| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {message}", path.display(), i + 1),
                )
            };
            let scenario: Scenario =
                serde_json::from_str(&line?).map_err(|e| invalid(e.to_string()))?;
            if scenario.rate.is_some() == scenario.window_ns.is_some() {
                return Err(invalid(
                    "a scenario has a rate or a window_ns, not both".into(),
                ));
            }
            if scenario.events.len() != scenario.expected.len() {
                return Err(invalid(format!(
                    "{} events but {} expected answers",
                    scenario.events.len(),
                    scenario.expected.len()
                )));
            }
            Ok(scenario)
        })
        .collect()
}

/// Runs `run(file, scenario)` on every scenario of the bucket files
/// ([`BUCKET_FILES`]; each with a fresh backend, which `run` builds) and
/// panics with every mismatch if there is any, or if not all 180 scenarios
/// ran.
///
/// # Panics
/// On a mismatch, a missing or unreadable file, or a scenario count other
/// than 180.
pub fn assert_every_scenario(run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    assert_scenarios(&BUCKET_FILES, 180, run);
}

/// [`assert_every_scenario`] for the window algorithms: both window files
/// ([`WINDOW_FILES`]), 180 scenarios.
///
/// # Panics
/// As for [`assert_every_scenario`].
pub fn assert_every_window_scenario(run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    assert_scenarios(&WINDOW_FILES, 180, run);
}

/// [`assert_every_scenario`] for the quota changes: both policy files
/// ([`POLICY_FILES`]: `reconfigure` events and keys' own quotas on the
/// buckets), 120 scenarios.
///
/// # Panics
/// As for [`assert_every_scenario`].
pub fn assert_every_policy_scenario(run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>) {
    assert_scenarios(&POLICY_FILES, 120, run);
}

/// Runs `run(file, scenario)` on every scenario of `files` and panics with
/// every mismatch if there is any, or if the number of scenarios run is not
/// `expected_count` (so that a file that lost scenarios cannot pass
/// quietly). The files hold 180 bucket, 180 window and 120 policy
/// scenarios.
///
/// # Panics
/// On a mismatch, a missing or unreadable file, or another count.
pub fn assert_scenarios(
    files: &[&str],
    expected_count: usize,
    mut run: impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>>,
) {
    let mut count = 0;
    let mut failures = Vec::new();
    for &file in files {
        let scenarios = load_scenarios(file).unwrap_or_else(|e| panic!("{e}"));
        for scenario in scenarios {
            if let Err(m) = run(file, &scenario) {
                failures.push(format!("{file}: {m}"));
            }
            count += 1;
        }
    }
    assert_eq!(count, expected_count, "scenarios in {files:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the folder loads, with the number of scenarios and the
    /// kinds of event its README describes.
    #[test]
    fn every_file_loads() {
        let mut names: Vec<String> = std::fs::read_dir(conformance_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".jsonl.gz"))
            .collect();
        names.sort();
        let mut all = ALL_FILES.map(str::to_owned).to_vec();
        all.sort();
        assert_eq!(names, all, "ALL_FILES lists every file of the folder");
        for (file, count) in [
            ("scenarios-ns.jsonl.gz", 120),
            ("scenarios-us.jsonl.gz", 60),
            ("windows-ns.jsonl.gz", 120),
            ("windows-us.jsonl.gz", 60),
            ("policies-ns.jsonl.gz", 80),
            ("policies-us.jsonl.gz", 40),
        ] {
            let scenarios = load_scenarios(file).unwrap();
            assert_eq!(scenarios.len(), count, "{file}");
            let windows = file.starts_with("windows");
            let mut reconfigures = 0;
            let mut own_quotas = 0;
            for s in &scenarios {
                assert_eq!(s.window_ns.is_some(), windows, "{file} {}", s.id);
                if windows {
                    assert_eq!(s.quota(), Err(ConfigError::NeedsRate));
                    assert!(matches!(
                        s.kind(),
                        AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow
                    ));
                } else {
                    s.quota().unwrap();
                    assert!(matches!(
                        s.kind(),
                        AlgorithmKind::TokenBucket | AlgorithmKind::LeakyBucket
                    ));
                }
                s.any_algorithm().unwrap();
                for e in &s.events {
                    match e {
                        Event::Reconfigure(r) => {
                            reconfigures += 1;
                            r.quota.quota().unwrap();
                        }
                        Event::Request(r) => own_quotas += usize::from(r.quota.is_some()),
                    }
                }
            }
            let policies = file.starts_with("policies");
            assert_eq!(reconfigures > 0, policies, "{file}");
            assert_eq!(own_quotas > 0, policies, "{file}");
        }
    }

    /// The events print back to lines that parse to the same events, so a
    /// scenario can be fed to `ratelimit replay`.
    #[test]
    fn scenario_input_round_trips() {
        for file in ALL_FILES {
            for s in load_scenarios(file).unwrap().iter().step_by(7) {
                let again: Vec<Event> = s
                    .input()
                    .lines()
                    .map(|l| crate::parse_event(l).unwrap())
                    .collect();
                assert_eq!(again, s.events, "{file} {}", s.id);
            }
        }
    }
}
