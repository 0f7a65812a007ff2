//! `ratelimit inspect`: an operator's view of one key in Redis, as one JSON
//! line.

use ratelimit_core::{Algorithm, AlgorithmKind, AnyAlgorithm, Quota, Rate, TokenBucket};
use ratelimit_redis::{KeyState, RedisLimitError, RedisLimiter, RedisPool};

use crate::Failure;
use crate::args::{InspectArgs, InspectAs};

/// A configuration error is the command line's fault; anything else is
/// Redis's (or the way to it).
fn failure(e: RedisLimitError) -> Failure {
    if e.is_redis_failure() {
        Failure::Runtime(e.to_string())
    } else {
        Failure::Usage(e.to_string())
    }
}

/// `key`'s Redis key and state, read by a limiter running `algorithm`.
fn read<A: Algorithm>(algorithm: A, args: &InspectArgs) -> Result<(String, KeyState), Failure> {
    let pool = RedisPool::open(&args.redis_url).map_err(failure)?;
    let limiter = RedisLimiter::builder(algorithm)
        .prefix(args.prefix.as_str())
        .build(pool)
        .map_err(failure)?;
    let redis_key = limiter.redis_key(&args.key).map_err(failure)?;
    let state = limiter
        .inspect(&args.key)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok((String::from_utf8_lossy(&redis_key).into_owned(), state))
}

/// A number, or `null`.
fn or_null(n: Option<u64>) -> String {
    n.map_or_else(|| "null".to_owned(), |n| n.to_string())
}

/// The JSON line for `args`.
pub(crate) fn run(args: &InspectArgs) -> Result<String, Failure> {
    let read_as = args.read_as().map_err(Failure::Usage)?;
    let (redis_key, state) = match read_as {
        // Without a limit, any quota reads tat, TTL and reset alike.
        InspectAs::Bucket(limit) => read(
            TokenBucket::new(
                limit
                    .map_or_else(|| Quota::new(1, Rate::per_second(1)), Ok)
                    .map_err(|e| Failure::Usage(e.to_string()))?,
            ),
            args,
        )?,
        InspectAs::Window { algorithm, .. } => match algorithm {
            AnyAlgorithm::FixedWindow(a) => read(a, args)?,
            AnyAlgorithm::SlidingWindow(a) => read(a, args)?,
            AnyAlgorithm::TokenBucket(_) | AnyAlgorithm::LeakyBucket(_) => {
                unreachable!("read_as gives a window algorithm for a window key")
            }
        },
    };
    let mut line = format!(
        r#"{{"key": {}, "redis_key": {}, "exists": {}"#,
        json_string(&args.key),
        json_string(&redis_key),
        state.tat_ns.is_some() || state.window.is_some(),
    );
    match read_as {
        InspectAs::Bucket(_) => {
            line += &format!(r#", "tat_ns": {}"#, or_null(state.tat_ns));
        }
        InspectAs::Window { algorithm, .. } => {
            let window_ns = algorithm.period_ns();
            let w = state.window;
            line += &format!(
                r#", "window_ns": {window_ns}, "window_index": {}, "count": {}"#,
                or_null(w.map(|w| w.window)),
                or_null(w.map(|w| w.count)),
            );
            if algorithm.kind() == AlgorithmKind::SlidingWindow {
                line += &format!(r#", "previous_count": {}"#, or_null(w.map(|w| w.previous)));
            }
        }
    }
    line += &format!(
        r#", "server_now_ns": {}, "ttl_ms": {}, "reset_after_ns": {}"#,
        state.server_now_ns,
        or_null(
            state
                .ttl
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
        ),
        state.reset_after.as_nanos(),
    );
    match read_as {
        InspectAs::Bucket(Some(q)) if args.algorithm == AlgorithmKind::LeakyBucket => {
            line += &format!(r#", "level": {}"#, q.capacity() - state.remaining);
        }
        InspectAs::Bucket(Some(_)) => {
            line += &format!(r#", "tokens": {}"#, state.remaining);
        }
        InspectAs::Window {
            limit_given: true, ..
        } => {
            line += &format!(r#", "remaining": {}"#, state.remaining);
        }
        InspectAs::Bucket(None) | InspectAs::Window { .. } => {}
    }
    line.push('}');
    Ok(line)
}

/// `text` as a JSON string literal that is safe on a terminal: besides
/// what JSON requires (quotes, backslashes, C0 controls), every character
/// that is not printable (DEL, C1 controls such as the 8-bit CSI,
/// bidirectional and other format characters) is written as `\uXXXX`.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' ' | '!'..='~' => out.push(c),
            c if c.is_ascii() || c.escape_debug().count() > 1 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_are_valid_json_and_safe_on_a_terminal() {
        for text in [
            "plain",
            "quote \" and \\ backslash",
            "a\nb\r\t",
            "\u{1b}[2J\u{7f}\u{9b}31m",
            "abc\u{202e}fed\u{2066}",
            "é 東京 🦀",
            "tag \u{e0041}",
        ] {
            let json = json_string(text);
            assert!(!json.chars().any(|c| c.is_control()), "{json:?}");
            assert!(!json.contains('\u{202e}'));
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, text);
        }
        assert_eq!(json_string("é 東京 🦀"), "\"é 東京 🦀\"");
        assert_eq!(json_string("\u{1b}"), "\"\\u001b\"");
    }
}
