//! One input event of the replay format.

use serde::{Deserialize, Serialize};

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Policing: allow or deny now.
    Check,
    /// Shaping: admit to proceed after a wait, or reject.
    Reserve,
}

/// One line of replay input:
/// `{"t_ns": 1000000000, "key": "user1", "op": "check", "cost": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Virtual time in nanoseconds; never decreases from one line to the next.
    pub t_ns: u64,
    /// The key the event is counted against.
    pub key: String,
    /// `check` or `reserve`.
    pub op: Op,
    /// The request's cost, 1 when absent.
    #[serde(default = "one")]
    pub cost: u64,
    /// For `reserve`: the longest acceptable wait; absent or null for
    /// unbounded.
    #[serde(default)]
    pub max_wait_ns: Option<u64>,
}

const fn one() -> u64 {
    1
}

/// Parses one line of replay input, with a message fit for a person when it
/// is malformed.
pub fn parse_event(line: &str) -> Result<Event, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let e = parse_event(r#"{"t_ns": 5, "key": "a", "op": "reserve"}"#).unwrap();
        assert_eq!((e.cost, e.max_wait_ns, e.op), (1, None, Op::Reserve));
        let e = parse_event(
            r#"{"t_ns": 5, "key": "a", "op": "check", "cost": 0, "max_wait_ns": null}"#,
        )
        .unwrap();
        assert_eq!(e.cost, 0);
        for bad in [
            "",
            "{",
            r#"{"t_ns": -1, "key": "a", "op": "check"}"#,
            r#"{"t_ns": 1, "key": "a", "op": "take"}"#,
            r#"{"t_ns": 1, "op": "check"}"#,
            r#"{"t_ns": 1.5, "key": "a", "op": "check"}"#,
            r#"{"t_ns": 1, "key": "a", "op": "check", "cost": 18446744073709551616}"#,
            r#"{"t_ns": 1, "key": "a", "op": "check", "extra": 1}"#,
        ] {
            assert!(parse_event(bad).is_err(), "{bad}");
        }
    }
}
