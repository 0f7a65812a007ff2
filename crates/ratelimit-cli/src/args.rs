//! The command line, declared with clap's derive: every subcommand has
//! `--help`, the binary has `--version`, and a malformed command line is
//! reported in clap's format with exit status 2.
//!
//! Checks that span several options (a valid quota or window for the
//! algorithm, the Redis options only with the Redis backend) run after
//! parsing, in [`ReplayArgs::validate`] and [`InspectArgs::read_as`], and
//! are reported the same way.

use core::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use ratelimit_core::{AlgorithmKind, AnyAlgorithm, ConfigError, Quota, Rate};

/// `ratelimit`: a policy simulator and an operator's tool.
#[derive(Debug, Parser)]
#[command(
    name = "ratelimit",
    version,
    about = "Replay traffic through a rate limiter, and inspect limits kept in Redis",
    long_about = "Replay traffic through a rate limiter (a policy simulator: what would this \
                  limit have done to this traffic?), and inspect limits kept in Redis.",
    subcommand_required = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Replay JSON Lines of events from stdin through a limiter and print
    /// each decision
    Replay(ReplayArgs),
    /// Print one Redis key's rate-limit state as one JSON line
    Inspect(InspectArgs),
    /// Serve the dashboard of every process publishing under a Redis prefix
    Dashboard(crate::dashboard::DashboardArgs),
    /// Print a completion script for a shell
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell to complete in
        shell: Shell,
    },
}

const COMPLETIONS_HELP: &str = "\
Examples:
  ratelimit completions bash > ~/.local/share/bash-completion/completions/ratelimit
  ratelimit completions zsh > \"${fpath[1]}/_ratelimit\"
  ratelimit completions fish > ~/.config/fish/completions/ratelimit.fish";

const REPLAY_HELP: &str = "\
Reads events, one JSON object per line, from stdin:
  {\"t_ns\": 1000000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 1}
  {\"t_ns\": 1000000500, \"key\": \"user1\", \"op\": \"reserve\", \"cost\": 2, \"max_wait_ns\": 5000000}
  {\"t_ns\": 2000000000, \"op\": \"reconfigure\", \"capacity\": 20, \"rate\": 4, \"strategy\": \"keep-consumed\"}
  {\"t_ns\": 2000000100, \"key\": \"vip\", \"op\": \"check\", \"capacity\": 100, \"rate\": 50}
and writes one line per event, in order, to stdout:
  {\"allowed\": true, \"remaining\": 9, \"retry_after_ns\": null, \"reset_after_ns\": 500000000}
  {\"allowed\": true, \"wait_ns\": 0}
  {\"reconfigured\": true}
  {\"allowed\": true, \"remaining\": 99, \"retry_after_ns\": null, \"reset_after_ns\": 20000000}
Time comes from the events (t_ns, nanoseconds, never decreasing), never
from a clock. `cost` defaults to 1; `max_wait_ns` absent or null means no
bound. A `reconfigure` changes the quota of every key without its own
(strategy: keep-consumed, the default, keep-available, proportional or
reset); `capacity` and `rate` on a request give that key a quota of its
own from then on. Both need a bucket; a window algorithm answers `check`
only. Lines are at most 1 MiB.

Exit status: 0 when every line was answered; 1 when the input or the
backend failed (the error names the line; the lines before it were
answered); 2 for a malformed command line.";

/// `--algorithm`: the name of one of the four algorithms (listed in
/// `--help`, errors and shell completions), read by `AlgorithmKind`'s
/// `FromStr`, the one parser of those names.
fn algorithm_parser() -> impl TypedValueParser<Value = AlgorithmKind> {
    PossibleValuesParser::new(AlgorithmKind::ALL.map(AlgorithmKind::name))
        .try_map(|name| name.parse::<AlgorithmKind>().map_err(|e| e.to_string()))
}

/// The units `--window` accepts, with their length in nanoseconds.
const WINDOW_UNITS: [(&str, u64); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `--window`: a whole number and a unit, with nothing between them:
/// `250ns`, `10us`, `1500ms`, `60s`, `5m`, `1h`. Exact: the window is that
/// many nanoseconds, at least 1, at most `u64::MAX`.
fn parse_window(text: &str) -> Result<Duration, String> {
    let syntax = || {
        "must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m"
            .to_owned()
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let (_, ns_per_unit) = WINDOW_UNITS
        .into_iter()
        .find(|&(name, _)| name == unit)
        .ok_or_else(syntax)?;
    if number.is_empty() {
        return Err(syntax());
    }
    let too_long = || ConfigError::WindowTooLong.to_string();
    let ns = number
        .parse::<u64>()
        .map_err(|_| too_long())?
        .checked_mul(ns_per_unit)
        .ok_or_else(too_long)?;
    if ns == 0 {
        return Err(ConfigError::ZeroWindow.to_string());
    }
    Ok(Duration::from_nanos(ns))
}

/// `--capacity`: a whole number (checked against the rate later).
fn parse_capacity(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| "must be a whole number, such as 10".to_owned())
}

/// `--rate`: a decimal number of units per second, exactly.
fn parse_rate(text: &str) -> Result<Rate, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// Where the limiter's state lives during a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendKind {
    /// In this process (the keyed in-memory limiter on the events' clock)
    Memory,
    /// In Redis, with the events' times as client time
    Redis,
}

/// The options of `ratelimit replay`.
#[derive(Debug, Args)]
#[command(after_help = REPLAY_HELP)]
#[command(group(ArgGroup::new("limit").required(true).args(["rate", "window"])))]
pub(crate) struct ReplayArgs {
    /// The algorithm
    #[arg(long, value_name = "ALGORITHM", value_parser = algorithm_parser())]
    pub(crate) algorithm: AlgorithmKind,
    /// The capacity: the burst size of a token bucket, the queue length of a
    /// leaky bucket, the limit per window of a window algorithm
    #[arg(long, value_name = "C", allow_negative_numbers = true, value_parser = parse_capacity)]
    pub(crate) capacity: u64,
    /// The rate of a bucket in units per second, a decimal number (2, 0.5,
    /// 2.5e6)
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = parse_rate)]
    pub(crate) rate: Option<Rate>,
    /// The window of a window algorithm: a whole number and a unit (250ns,
    /// 10us, 1500ms, 60s, 5m, 1h)
    #[arg(long, value_name = "W", allow_hyphen_values = true, value_parser = parse_window)]
    pub(crate) window: Option<Duration>,
    /// Where the state lives
    #[arg(long, value_enum, value_name = "BACKEND", default_value_t = BackendKind::Memory)]
    pub(crate) backend: BackendKind,
    /// The Redis to replay against (with --backend redis), e.g.
    /// redis://127.0.0.1:6379/0
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// The key prefix in Redis (with --backend redis); by default a fresh
    /// one per replay, so that the same input gives the same output
    #[arg(long, value_name = "P")]
    pub(crate) prefix: Option<String>,
    /// Also print per-key allowed/denied counts and a histogram of the
    /// denials over time, to stderr
    #[arg(long)]
    pub(crate) summary: bool,
}

/// A replay's options, checked together.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    /// The algorithm with its quota or window.
    pub(crate) algorithm: AnyAlgorithm,
    /// `Some((url, prefix))` for the Redis backend.
    pub(crate) redis: Option<(&'a str, Option<&'a str>)>,
    pub(crate) summary: bool,
}

impl ReplayArgs {
    /// The checks that span several options.
    pub(crate) fn validate(&self) -> Result<Replay<'_>, String> {
        let algorithm = match (self.rate, self.window) {
            (Some(rate), None) => AnyAlgorithm::with_rate(self.algorithm, self.capacity, rate),
            (None, Some(window)) => {
                AnyAlgorithm::with_window(self.algorithm, self.capacity, window)
            }
            // The "limit" group takes exactly one of the two.
            _ => return Err("give --rate or --window, not both".into()),
        }
        .map_err(|e| format!("invalid limit for {}: {e}", self.algorithm))?;
        let redis = match (self.backend, self.redis_url.as_deref()) {
            (BackendKind::Redis, Some(url)) => Some((url, self.prefix.as_deref())),
            (BackendKind::Redis, None) => return Err("--backend redis needs --redis-url".into()),
            (BackendKind::Memory, _) if self.redis_url.is_some() || self.prefix.is_some() => {
                return Err("--redis-url and --prefix need --backend redis".into());
            }
            (BackendKind::Memory, _) => None,
        };
        Ok(Replay {
            algorithm,
            redis,
            summary: self.summary,
        })
    }
}

/// The options of `ratelimit inspect`.
#[derive(Debug, Args)]
#[command(after_help = "\
A bucket's key: prints the stored tat, the server's time, the TTL, the
time until reset and, given --capacity and --rate, the tokens (token
bucket) or level (leaky bucket) now. A window's key (--window W, the
limiter's window): prints the stored window index and counts instead of
tat, and, given --capacity, what is left of the limit now. Times are on
the server's clock. Put -- before a KEY that starts with -.

Exit status: 0 when the state was printed; 1 when Redis could not be
reached or failed; 2 for a malformed command line.")]
pub(crate) struct InspectArgs {
    /// The Redis the limiter uses, e.g. redis://127.0.0.1:6379/0
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: String,
    /// The limiter's key prefix
    #[arg(long, value_name = "P", default_value = "ratelimit")]
    pub(crate) prefix: String,
    /// The limiter's algorithm (to read its keys and show what is left)
    #[arg(long, value_name = "ALGORITHM", value_parser = algorithm_parser(), default_value = "token-bucket")]
    pub(crate) algorithm: AlgorithmKind,
    /// The limiter's capacity (a bucket's with --rate: shows tokens or
    /// level; a window's limit: shows what is left)
    #[arg(long, value_name = "C", allow_negative_numbers = true, value_parser = parse_capacity)]
    pub(crate) capacity: Option<u64>,
    /// A bucket's rate in units per second (with --capacity)
    #[arg(long, value_name = "R", requires = "capacity", conflicts_with = "window", allow_negative_numbers = true, value_parser = parse_rate)]
    pub(crate) rate: Option<Rate>,
    /// A window algorithm's window (250ns, 10us, 1500ms, 60s, 5m, 1h):
    /// needed to read a window's key
    #[arg(long, value_name = "W", allow_hyphen_values = true, value_parser = parse_window)]
    pub(crate) window: Option<Duration>,
    /// The key, as the application passes it to the limiter (without the
    /// prefix)
    pub(crate) key: String,
}

/// What `ratelimit inspect` reads a key as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InspectAs {
    /// A bucket's key, with the quota when given (`--capacity`, `--rate`).
    Bucket(Option<Quota>),
    /// A window algorithm's key, of `window`, with the limit when given.
    Window {
        /// The algorithm, its window and its limit (1 when not given: the
        /// limit changes only what is left, never the stored counts).
        algorithm: AnyAlgorithm,
        /// Whether `--capacity` gave the limit.
        limit_given: bool,
    },
}

impl InspectArgs {
    /// How to read the key, from `--algorithm` and the limit options.
    pub(crate) fn read_as(&self) -> Result<InspectAs, String> {
        let kind = self.algorithm;
        if kind.is_bucket() {
            if self.window.is_some() {
                return Err(format!("{kind} takes --capacity and --rate, not --window"));
            }
            return match (self.capacity, self.rate) {
                (Some(c), Some(r)) => Quota::new(c, r)
                    .map(|q| InspectAs::Bucket(Some(q)))
                    .map_err(|e| format!("invalid limit: {e}")),
                (Some(_), None) => Err(format!("--capacity needs --rate for {kind}")),
                _ => Ok(InspectAs::Bucket(None)),
            };
        }
        let window = self
            .window
            .ok_or_else(|| format!("a {kind} key is read with the limiter's --window W"))?;
        AnyAlgorithm::with_window(kind, self.capacity.unwrap_or(1), window)
            .map(|algorithm| InspectAs::Window {
                algorithm,
                limit_given: self.capacity.is_some(),
            })
            .map_err(|e| format!("invalid limit: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn windows_are_whole_numbers_with_a_unit() {
        for (text, ns) in [
            ("250ns", 250),
            ("10us", 10_000),
            ("1500ms", 1_500_000_000),
            ("60s", 60_000_000_000),
            ("5m", 300_000_000_000),
            ("1h", 3_600_000_000_000),
            ("007s", 7_000_000_000),
            ("18446744073709551615ns", u64::MAX),
        ] {
            assert_eq!(parse_window(text), Ok(Duration::from_nanos(ns)), "{text}");
        }
        for bad in [
            "", "60", "s", "1.5s", "-1s", "+1s", " 1s", "1s ", "1 s", "1S", "1sec", "1d", "1µs",
            "0x10s",
        ] {
            assert!(
                parse_window(bad)
                    .unwrap_err()
                    .starts_with("must be a whole number"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_window("0ms").unwrap_err(),
            ConfigError::ZeroWindow.to_string()
        );
        for too_long in ["18446744073709551616ns", "18446744073709552s", "5124096h"] {
            assert_eq!(
                parse_window(too_long).unwrap_err(),
                ConfigError::WindowTooLong.to_string(),
                "{too_long}"
            );
        }
        // The longest whole number of hours that fits.
        assert!(parse_window("5124095h").is_ok());
    }
}
