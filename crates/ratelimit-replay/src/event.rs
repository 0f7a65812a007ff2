//! One input event of the replay format (`docs/semantics.md`, "Replay
//! format"): a request (`check` or `reserve`) against a key, possibly with
//! that key's own quota, or a `reconfigure` of the limiter's quota.
//!
//! Lines are read into a flat [`RawEvent`] (every field the format knows,
//! unknown fields refused) and then checked into an [`Event`], so that a
//! line mixing the fields of two kinds of event is an error naming what is
//! wrong rather than a silently ignored field.

use ratelimit_core::{ConfigError, Quota, Strategy};
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// What a request event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Policing: allow or deny now.
    Check,
    /// Shaping: admit to proceed after a wait, or reject.
    Reserve,
}

/// A capacity and a rate as written on an event line. The rate keeps its
/// decimal text so that it converts to a [`Quota`] exactly (and prints back
/// as written); the pair is checked to make a valid quota when the line is
/// parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSpec {
    /// The capacity `C`.
    pub capacity: u64,
    /// Units per second, as written (`2`, `0.5`, `2.5e6`).
    pub rate: Number,
}

impl QuotaSpec {
    /// The quota these numbers describe.
    pub fn quota(&self) -> Result<Quota, ConfigError> {
        Quota::new(self.capacity, self.rate.to_string().parse()?)
    }
}

/// A `check` or `reserve` of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Virtual time in nanoseconds; never decreases from one line to the next.
    pub t_ns: u64,
    /// The key the event is counted against.
    pub key: String,
    /// `check` or `reserve`.
    pub op: Op,
    /// The request's cost, 1 when absent.
    pub cost: u64,
    /// For `reserve`: the longest acceptable wait; absent or null for
    /// unbounded. Ignored by `check`.
    pub max_wait_ns: Option<u64>,
    /// The key's own quota from this event on (`"capacity"` and `"rate"` on
    /// the line), or `None` for the quota the key already follows.
    pub quota: Option<QuotaSpec>,
}

/// A change of the limiter's quota, for every key, at `t_ns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfigure {
    /// When the new quota applies.
    pub t_ns: u64,
    /// The new quota.
    pub quota: QuotaSpec,
    /// How each key's state is converted (`keep-consumed` when absent).
    pub strategy: Strategy,
}

/// One line of replay input, for example
/// `{"t_ns": 1000000000, "key": "user1", "op": "check", "cost": 1}` or
/// `{"t_ns": 5000000000, "op": "reconfigure", "capacity": 20, "rate": 4}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawEvent", into = "RawEvent")]
#[non_exhaustive]
pub enum Event {
    /// `check` or `reserve` of a key.
    Request(Request),
    /// `reconfigure`: the limiter's quota changes for every key.
    Reconfigure(Reconfigure),
}

impl Event {
    /// The event's virtual time.
    #[must_use]
    pub fn t_ns(&self) -> u64 {
        match self {
            Self::Request(r) => r.t_ns,
            Self::Reconfigure(r) => r.t_ns,
        }
    }

    /// The key a request is counted against; `None` for a reconfiguration.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.key),
            Self::Reconfigure(_) => None,
        }
    }
}

impl From<Request> for Event {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}

impl From<Reconfigure> for Event {
    fn from(r: Reconfigure) -> Self {
        Self::Reconfigure(r)
    }
}

/// Every `op` of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum RawOp {
    Check,
    Reserve,
    Reconfigure,
}

/// A line with every field the format knows, before it is checked into an
/// [`Event`].
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    t_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    op: RawOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_wait_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strategy: Option<String>,
}

fn quota_spec(capacity: Option<u64>, rate: Option<Number>) -> Result<Option<QuotaSpec>, String> {
    let spec = match (capacity, rate) {
        (None, None) => return Ok(None),
        (Some(capacity), Some(rate)) => QuotaSpec { capacity, rate },
        _ => return Err("`capacity` and `rate` go together".to_owned()),
    };
    spec.quota().map_err(|e| {
        format!(
            "invalid quota (capacity {}, rate {}): {e}",
            spec.capacity, spec.rate
        )
    })?;
    Ok(Some(spec))
}

impl TryFrom<RawEvent> for Event {
    type Error = String;

    fn try_from(raw: RawEvent) -> Result<Self, String> {
        let op = match raw.op {
            RawOp::Check => Op::Check,
            RawOp::Reserve => Op::Reserve,
            RawOp::Reconfigure => {
                if raw.key.is_some() || raw.cost.is_some() || raw.max_wait_ns.is_some() {
                    return Err(
                        "a reconfigure event applies to every key: it takes no `key`, `cost` or `max_wait_ns`"
                            .to_owned(),
                    );
                }
                let quota = quota_spec(raw.capacity, raw.rate)?
                    .ok_or("a reconfigure event needs `capacity` and `rate`")?;
                let strategy = match raw.strategy.as_deref() {
                    None => Strategy::default(),
                    Some(name) => name.parse().map_err(|_| {
                        format!(
                            "unknown strategy {name:?}, expected one of {}",
                            Strategy::ALL.map(Strategy::name).join(", ")
                        )
                    })?,
                };
                return Ok(Self::Reconfigure(Reconfigure {
                    t_ns: raw.t_ns,
                    quota,
                    strategy,
                }));
            }
        };
        if raw.strategy.is_some() {
            return Err(
                "`strategy` belongs to reconfigure events (a key's own quota converts with keep-consumed)"
                    .to_owned(),
            );
        }
        Ok(Self::Request(Request {
            t_ns: raw.t_ns,
            key: raw.key.ok_or("missing field `key`")?,
            op,
            cost: raw.cost.unwrap_or(1),
            max_wait_ns: raw.max_wait_ns,
            quota: quota_spec(raw.capacity, raw.rate)?,
        }))
    }
}

impl From<Event> for RawEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::Request(r) => {
                let (capacity, rate) = r.quota.map(|q| (q.capacity, q.rate)).unzip();
                Self {
                    t_ns: r.t_ns,
                    key: Some(r.key),
                    op: match r.op {
                        Op::Check => RawOp::Check,
                        Op::Reserve => RawOp::Reserve,
                    },
                    cost: Some(r.cost),
                    max_wait_ns: r.max_wait_ns,
                    capacity,
                    rate,
                    strategy: None,
                }
            }
            Event::Reconfigure(r) => Self {
                t_ns: r.t_ns,
                key: None,
                op: RawOp::Reconfigure,
                cost: None,
                max_wait_ns: None,
                capacity: Some(r.quota.capacity),
                rate: Some(r.quota.rate),
                strategy: Some(r.strategy.name().to_owned()),
            },
        }
    }
}

/// Parses one line of replay input, with a message fit for a person when it
/// is malformed. The message names the column where the JSON parser
/// stopped, when it knows it, but never a line: the caller knows which line
/// this is.
pub fn parse_event(line: &str) -> Result<Event, String> {
    serde_json::from_str(line).map_err(|e| {
        let text = e.to_string();
        if e.line() == 0 {
            return text;
        }
        // serde_json appends " at line L column C", where L counts lines
        // within this one string: always 1 here, and not the input's line.
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        match text.strip_suffix(&suffix) {
            Some(message) => format!("{message} (column {})", e.column()),
            None => text,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(line: &str) -> Request {
        match parse_event(line).unwrap() {
            Event::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_errors() {
        let e = request(r#"{"t_ns": 5, "key": "a", "op": "reserve"}"#);
        assert_eq!((e.cost, e.max_wait_ns, e.op), (1, None, Op::Reserve));
        let e =
            request(r#"{"t_ns": 5, "key": "a", "op": "check", "cost": 0, "max_wait_ns": null}"#);
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

    #[test]
    fn messages_name_a_column_never_a_line() {
        let message = parse_event(r#"{"t_ns": 1, "key": "a", "op": "chek"}"#).unwrap_err();
        assert!(message.starts_with("unknown variant `chek`"), "{message}");
        assert!(message.ends_with("(column 36)"), "{message}");
        assert!(!message.contains("line"), "{message}");
        let message = parse_event("").unwrap_err();
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn quotas_on_requests_and_reconfigurations() {
        let r = request(r#"{"t_ns": 1, "key": "k", "op": "check", "capacity": 3, "rate": 0.5}"#);
        let quota = r.quota.unwrap().quota().unwrap();
        assert_eq!((quota.capacity(), quota.interval_ns()), (3, 2_000_000_000));
        let e = parse_event(
            r#"{"t_ns": 9, "op": "reconfigure", "capacity": 2, "rate": 10, "strategy": "proportional"}"#,
        )
        .unwrap();
        assert_eq!(e.t_ns(), 9);
        assert_eq!(e.key(), None);
        let Event::Reconfigure(r) = e else {
            panic!("{e:?}")
        };
        assert_eq!(r.strategy, Strategy::Proportional);
        assert_eq!(r.quota.capacity, 2);
        let e =
            parse_event(r#"{"t_ns": 9, "op": "reconfigure", "capacity": 2, "rate": 10}"#).unwrap();
        assert!(matches!(
            e,
            Event::Reconfigure(Reconfigure {
                strategy: Strategy::KeepConsumed,
                ..
            })
        ));
        for (bad, why) in [
            (
                r#"{"t_ns": 1, "op": "reconfigure", "capacity": 2}"#,
                "go together",
            ),
            (
                r#"{"t_ns": 1, "op": "reconfigure"}"#,
                "needs `capacity` and `rate`",
            ),
            (
                r#"{"t_ns": 1, "op": "reconfigure", "key": "k", "capacity": 2, "rate": 1}"#,
                "takes no `key`",
            ),
            (
                r#"{"t_ns": 1, "op": "reconfigure", "capacity": 0, "rate": 1}"#,
                "capacity must be at least 1",
            ),
            (
                r#"{"t_ns": 1, "key": "k", "op": "check", "capacity": 2, "rate": 0}"#,
                "rate must be a finite number greater than zero",
            ),
            (
                r#"{"t_ns": 1, "key": "k", "op": "check", "strategy": "reset"}"#,
                "`strategy` belongs to reconfigure events",
            ),
            (
                r#"{"t_ns": 1, "op": "reconfigure", "capacity": 2, "rate": 1, "strategy": "keep"}"#,
                "unknown strategy \"keep\", expected one of keep-consumed, keep-available, proportional, reset",
            ),
        ] {
            let message = parse_event(bad).unwrap_err();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn events_print_back_as_they_read() {
        for line in [
            r#"{"t_ns":1,"key":"a","op":"check","cost":1}"#,
            r#"{"t_ns":2,"key":"a","op":"reserve","cost":2,"max_wait_ns":5}"#,
            r#"{"t_ns":3,"key":"b","op":"check","cost":1,"capacity":10,"rate":2.5}"#,
            r#"{"t_ns":4,"op":"reconfigure","capacity":2,"rate":10,"strategy":"keep-available"}"#,
        ] {
            let event = parse_event(line).unwrap();
            assert_eq!(serde_json::to_string(&event).unwrap(), line);
        }
    }
}
