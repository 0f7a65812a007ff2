//! The comparison's result: the PERFORMANCE COMPARISON table as text and
//! the same figures as JSON.

use core::fmt::Write as _;

use serde_json::{Value, json};

use crate::machine::Machine;
use crate::measure::Settings;

/// One measured row: a shape run by one implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The shape's `layer/scenario` id (`memory/keyed_10k`, `redis/...`).
    pub shape: String,
    /// Who ran it (`ratelimit`, `governor`, ...).
    pub implementation: String,
    /// Threads running it at once.
    pub threads: usize,
    /// Keys it spreads over.
    pub keys: usize,
    /// Median over rounds of the mean per-op time, in nanoseconds.
    pub mean_ns: f64,
    /// Median over rounds of the 99th percentile of batch means, in ns.
    pub p99_ns: f64,
    /// Median over rounds of the total operations per second.
    pub ops_per_s: f64,
    /// Operations in a batch.
    pub batch: u64,
    /// Time ratio to governor's row of the same shape: ours / governor's
    /// mean for one thread, governor's / ours throughput for several
    /// (below 1.00 is better either way). `None` without a governor row.
    pub vs_governor: Option<f64>,
    /// Why the figure needs a word, if it does.
    pub note: Option<String>,
}

/// Bytes per key of one implementation's keyed limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    /// Who was measured.
    pub implementation: String,
    /// Keys held when measured.
    pub keys: usize,
    /// Bytes per key, or why there is no figure.
    pub bytes_per_key: Result<f64, String>,
    /// What else was measured (e.g. table slots).
    pub detail: Option<String>,
}

/// A target of the issue, with the measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The measured value, if there is one.
    pub value: Option<f64>,
    /// The bound as text (`<= 1.00`).
    pub bound: String,
    /// Whether the value meets the bound.
    pub met: Option<bool>,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Where and when.
    pub machine: Machine,
    /// How long and how often each case was measured.
    pub settings: Settings,
    /// Whether this is the `--quick` smoke run.
    pub quick: bool,
    /// The measured rows, in table order.
    pub rows: Vec<Row>,
    /// Bytes per key at the keyed memory measurement.
    pub memory: Vec<MemoryRow>,
    /// The method behind [`memory`](Self::memory).
    pub memory_method: String,
    /// The targets against the figures.
    pub targets: Vec<Target>,
    /// Each shape's id and what it measures, in table order.
    pub shapes: Vec<(String, String)>,
    /// Parts left out, and why (`redis: redis-server not on PATH`).
    pub skipped: Vec<(String, String)>,
    /// Wall time of the measurement, in seconds.
    pub seconds: f64,
}

impl Report {
    /// The method line(s) of the header.
    #[must_use]
    pub fn method(&self) -> String {
        let s = &self.settings;
        format!(
            "how measured: per-op time from batches of N ops (N sized once so a batch takes >= {} us), timed with Instant.\n\
             \x20 mean, p99: mean and 99th percentile of the batch means of one {} ms sample (after {} ms warm-up);\n\
             \x20 each figure is the median of {} rounds; the implementations of a shape run interleaved, in rotating order.\n\
             \x20 (a mean above its p99 means a few batches were descheduled: the mean counts them, the percentile does not.)\n\
             \x20 2-thread rows: mean and p99 are the per-op latency one thread sees; throughput is both threads' ops per wall second.\n\
             \x20 vs governor: our mean / governor's (below 1.00 is faster); on 2-thread rows, governor's ops/s / ours\n\
             \x20 (below 1.00 is more throughput than governor). Floors have no ratio.",
            s.batch.as_micros(),
            s.sample.as_millis(),
            s.warmup.as_millis(),
            s.rounds,
        )
    }

    /// The table as printed.
    #[must_use]
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let run = if self.quick {
            ", --quick: smoke run, figures indicative only"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "PERFORMANCE COMPARISON (machine: {}, {} cores, {}{run})",
            m.cpu, m.cores, m.date
        );
        let _ = writeln!(out, "{}\n", self.method());
        let _ = writeln!(
            out,
            "{:<32} {:<24} {:>10} {:>10} {:>16}  vs governor",
            "shape", "implementation", "mean", "p99", "throughput"
        );
        let mut last_shape = "";
        for r in &self.rows {
            let shape = if r.shape == last_shape {
                ""
            } else {
                r.shape.as_str()
            };
            if !shape.is_empty() && !last_shape.is_empty() {
                out.push('\n');
            }
            last_shape = &r.shape;
            let ratio = match r.vs_governor {
                Some(x) if r.threads > 1 => format!("{x:.2} (x{:.2} ops/s)", 1.0 / x),
                Some(x) => format!("{x:.2}"),
                None if r.implementation == "governor" && r.mean_ns.is_finite() => {
                    "1.00".to_owned()
                }
                None => "-".to_owned(),
            };
            let note = r
                .note
                .as_deref()
                .map(|n| format!("  [{n}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<32} {:<24} {:>10} {:>10} {:>16}  {ratio}{note}",
                shape,
                r.implementation,
                ns(r.mean_ns),
                ns(r.p99_ns),
                throughput(r.ops_per_s),
            );
        }
        let _ = writeln!(out, "\nSHAPES");
        for (id, what) in &self.shapes {
            let _ = writeln!(out, "  {id:<32} {what}");
        }
        let _ = writeln!(out, "\nMEMORY\n  {}", self.memory_method);
        for mrow in &self.memory {
            match &mrow.bytes_per_key {
                Ok(b) => {
                    let detail = mrow
                        .detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{:<32} {:<24} {:>10.1} bytes/key at {} keys{detail}",
                        "memory/bytes_per_key", mrow.implementation, b, mrow.keys
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "{:<32} {:<24} not measured: {e}",
                        "memory/bytes_per_key", mrow.implementation
                    );
                }
            }
        }
        let _ = writeln!(out, "\nTARGETS (issue 2; reported, never gated)");
        for t in &self.targets {
            let value = t
                .value
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "unknown",
            };
            let _ = writeln!(
                out,
                "  {:<72} {:>8}  target {:<8} {verdict}",
                t.name, value, t.bound
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSKIPPED");
            for (what, why) in &self.skipped {
                let _ = writeln!(out, "  {what}: {why}");
            }
        }
        let _ = writeln!(out, "\nmeasured in {:.0} s", self.seconds);
        out
    }

    /// The same figures as JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        let s = &self.settings;
        json!({
            "title": "PERFORMANCE COMPARISON",
            "machine": {
                "cpu": self.machine.cpu,
                "cores": self.machine.cores,
                "date": self.machine.date,
            },
            "quick": self.quick,
            "method": {
                "text": self.method(),
                "rounds": s.rounds,
                "sample_ms": s.sample.as_secs_f64() * 1e3,
                "warmup_ms": s.warmup.as_secs_f64() * 1e3,
                "min_batch_us": s.batch.as_secs_f64() * 1e6,
            },
            "rows": self.rows.iter().map(|r| json!({
                "shape": r.shape,
                "implementation": r.implementation,
                "threads": r.threads,
                "keys": r.keys,
                "mean_ns": finite(r.mean_ns),
                "p99_ns": finite(r.p99_ns),
                "ops_per_s": finite(r.ops_per_s),
                "batch_ops": r.batch,
                "vs_governor": r.vs_governor.and_then(finite),
                "note": r.note,
            })).collect::<Vec<_>>(),
            "memory": {
                "method": self.memory_method,
                "rows": self.memory.iter().map(|m| json!({
                    "implementation": m.implementation,
                    "keys": m.keys,
                    "bytes_per_key": m.bytes_per_key.as_ref().ok().copied().and_then(finite),
                    "error": m.bytes_per_key.as_ref().err(),
                    "detail": m.detail,
                })).collect::<Vec<_>>(),
            },
            "shapes": self.shapes.iter().map(|(id, what)| json!({"shape": id, "measures": what})).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| json!({
                "name": t.name,
                "value": t.value.and_then(finite),
                "bound": t.bound,
                "met": t.met,
            })).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(|(what, why)| json!({"what": what, "reason": why})).collect::<Vec<_>>(),
            "seconds": self.seconds,
        })
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A time in ns, µs or ms with three significant digits.
#[must_use]
pub fn ns(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_owned()
    } else if x < 10.0 {
        format!("{x:.2} ns")
    } else if x < 1_000.0 {
        format!("{x:.1} ns")
    } else if x < 1_000_000.0 {
        format!("{:.2} us", x / 1e3)
    } else {
        format!("{:.2} ms", x / 1e6)
    }
}

/// Operations per second as `M ops/s` or `k ops/s`.
#[must_use]
pub fn throughput(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_owned()
    } else if x >= 1e6 {
        format!("{:.1} M ops/s", x / 1e6)
    } else {
        format!("{:.1} k ops/s", x / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(ns(9.81), "9.81 ns");
        assert_eq!(ns(69.04), "69.0 ns");
        assert_eq!(ns(1234.0), "1.23 us");
        assert_eq!(throughput(102_000_000.0), "102.0 M ops/s");
        assert_eq!(throughput(950_000.0), "950.0 k ops/s");
    }
}
