//! The command line, declared with clap's derive: every subcommand has
//! `--help`, the binary has `--version`, and a malformed command line is
//! reported in clap's format with exit status 2.
//!
//! Checks that span several options (a valid quota, the Redis options only
//! with the Redis backend) run after parsing, in [`ReplayArgs::validate`]
//! and [`InspectArgs::limit`], and are reported the same way.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use ratelimit_core::{AlgorithmKind, Quota, Rate};

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
and writes one decision per event, in order, to stdout:
  {\"allowed\": true, \"remaining\": 9, \"retry_after_ns\": null, \"reset_after_ns\": 500000000}
  {\"allowed\": true, \"wait_ns\": 0}
Time comes from the events (t_ns, nanoseconds, never decreasing), never
from a clock. `cost` defaults to 1; `max_wait_ns` absent or null means no
bound. Lines are at most 1 MiB.

Exit status: 0 when every line was answered; 1 when the input or the
backend failed (the error names the line; the lines before it were
answered); 2 for a malformed command line.";

/// The algorithms `--algorithm` accepts.
const ALGORITHMS: [AlgorithmKind; 2] = [AlgorithmKind::TokenBucket, AlgorithmKind::LeakyBucket];

/// An algorithm's kind from its name.
fn parse_algorithm(name: &str) -> Result<AlgorithmKind, String> {
    ALGORITHMS
        .into_iter()
        .find(|kind| kind.name() == name)
        .ok_or_else(|| format!("unknown algorithm {name:?}"))
}

/// `--algorithm`: one of the names of [`ALGORITHMS`] (listed in `--help`,
/// errors and shell completions).
fn algorithm_parser() -> impl TypedValueParser<Value = AlgorithmKind> {
    PossibleValuesParser::new(ALGORITHMS.map(AlgorithmKind::name))
        .try_map(|name| parse_algorithm(&name))
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
pub(crate) struct ReplayArgs {
    /// The algorithm
    #[arg(long, value_name = "ALGORITHM", value_parser = algorithm_parser())]
    pub(crate) algorithm: AlgorithmKind,
    /// The capacity: the burst size of a token bucket, the queue length of a
    /// leaky bucket
    #[arg(long, value_name = "C", allow_negative_numbers = true, value_parser = parse_capacity)]
    pub(crate) capacity: u64,
    /// The rate in units per second, a decimal number (2, 0.5, 2.5e6)
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = parse_rate)]
    pub(crate) rate: Rate,
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
    pub(crate) algorithm: AlgorithmKind,
    pub(crate) quota: Quota,
    /// `Some((url, prefix))` for the Redis backend.
    pub(crate) redis: Option<(&'a str, Option<&'a str>)>,
    pub(crate) summary: bool,
}

impl ReplayArgs {
    /// The checks that span several options.
    pub(crate) fn validate(&self) -> Result<Replay<'_>, String> {
        let quota =
            Quota::new(self.capacity, self.rate).map_err(|e| format!("invalid limit: {e}"))?;
        let redis = match (self.backend, self.redis_url.as_deref()) {
            (BackendKind::Redis, Some(url)) => Some((url, self.prefix.as_deref())),
            (BackendKind::Redis, None) => return Err("--backend redis needs --redis-url".into()),
            (BackendKind::Memory, _) if self.redis_url.is_some() || self.prefix.is_some() => {
                return Err("--redis-url and --prefix need --backend redis".into());
            }
            (BackendKind::Memory, _) => None,
        };
        Ok(Replay {
            algorithm: self.algorithm,
            quota,
            redis,
            summary: self.summary,
        })
    }
}

/// The options of `ratelimit inspect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the stored tat, the server's time, the TTL, the time until reset and,
given the limit, the tokens (token bucket) or level (leaky bucket) now, on
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
    /// The limiter's algorithm (to show tokens or level)
    #[arg(long, value_name = "ALGORITHM", value_parser = algorithm_parser(), default_value = "token-bucket")]
    pub(crate) algorithm: AlgorithmKind,
    /// The limiter's capacity (with --rate: shows tokens or level)
    #[arg(long, value_name = "C", requires = "rate", allow_negative_numbers = true, value_parser = parse_capacity)]
    pub(crate) capacity: Option<u64>,
    /// The limiter's rate in units per second (with --capacity)
    #[arg(long, value_name = "R", requires = "capacity", allow_negative_numbers = true, value_parser = parse_rate)]
    pub(crate) rate: Option<Rate>,
    /// The key, as the application passes it to the limiter (without the
    /// prefix)
    pub(crate) key: String,
}

impl InspectArgs {
    /// The limit given with `--capacity` and `--rate`, if any.
    pub(crate) fn limit(&self) -> Result<Option<Quota>, String> {
        match (self.capacity, self.rate) {
            (Some(c), Some(r)) => Quota::new(c, r)
                .map(Some)
                .map_err(|e| format!("invalid limit: {e}")),
            _ => Ok(None),
        }
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
    fn every_algorithm_name_parses_back() {
        for kind in ALGORITHMS {
            assert_eq!(parse_algorithm(kind.name()), Ok(kind));
        }
        assert!(parse_algorithm("gcra").is_err());
    }
}
