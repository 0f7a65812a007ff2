//! `ratelimit`: replay JSON Lines of traffic through a limiter and print
//! each decision, a policy simulator that answers "what would this limit
//! have done to this traffic?".

mod args;
mod redis;
mod replay;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  ratelimit replay --algorithm token-bucket|leaky-bucket --capacity C --rate R
                   [--backend memory|redis] [--redis-url URL] [--prefix P] [--summary]

  Reads events, one JSON object per line, from stdin:
    {\"t_ns\": 1000000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 1}
    {\"t_ns\": 1000000500, \"key\": \"user1\", \"op\": \"reserve\", \"cost\": 2, \"max_wait_ns\": 5000000}
  and writes one decision per event, in order, to stdout. Time comes from the
  events. --rate is in units per second (2, 0.5, 2.5e6). --summary prints
  per-key allowed/denied counts to stderr. With --backend redis the state is
  kept in Redis under a fresh prefix (or --prefix P, to continue a replay).

  ratelimit inspect --redis-url URL [--prefix P]
                    [--algorithm token-bucket|leaky-bucket --capacity C --rate R] KEY

  Prints one Redis key's state as one JSON line: tat, server time, TTL,
  time until reset, and tokens or level given the limit.
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("replay") => match args::ReplayArgs::parse(&argv[1..]) {
            Ok(Some(options)) => replay::run(&options),
            Ok(None) => {
                print!("{USAGE}");
                ExitCode::SUCCESS
            }
            Err(message) => usage_error(&message),
        },
        Some("inspect") => redis::inspect(&argv[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command {other:?}")),
        None => usage_error("a command is required"),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{USAGE}");
    ExitCode::from(2)
}
