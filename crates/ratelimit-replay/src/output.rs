//! One output line of the replay format, with the field names and order of
//! `docs/semantics.md` ("Replay format").

use core::time::Duration;

use ratelimit_core::{Decision, Reservation};

fn ns(d: Duration) -> u128 {
    d.as_nanos()
}

fn opt_ns(d: Option<Duration>) -> String {
    d.map_or_else(|| "null".to_owned(), |d| ns(d).to_string())
}

/// `{"allowed": .., "remaining": .., "retry_after_ns": .., "reset_after_ns": ..}`
#[must_use]
pub fn render_check(d: &Decision) -> String {
    format!(
        r#"{{"allowed": {}, "remaining": {}, "retry_after_ns": {}, "reset_after_ns": {}}}"#,
        d.allowed,
        d.remaining,
        opt_ns(d.retry_after),
        ns(d.reset_after)
    )
}

/// `{"allowed": true, "wait_ns": ..}` or `{"allowed": false, "retry_after_ns": ..}`
#[must_use]
pub fn render_reserve(r: &Reservation) -> String {
    match r {
        Reservation::Admitted { wait, .. } => {
            format!(r#"{{"allowed": true, "wait_ns": {}}}"#, ns(*wait))
        }
        Reservation::Rejected { retry_after, .. } => format!(
            r#"{{"allowed": false, "retry_after_ns": {}}}"#,
            opt_ns(*retry_after)
        ),
    }
}
