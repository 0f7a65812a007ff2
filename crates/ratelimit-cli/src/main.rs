//! `ratelimit`: replay JSON Lines of traffic through a limiter and print
//! each decision (a policy simulator that answers "what would this limit
//! have done to this traffic?"), inspect a key kept in Redis, and print
//! shell completions.
//!
//! Exit status: 0 on success, 1 when the input, Redis or the output failed
//! (the message names the line of input), 2 when the command line is
//! malformed (clap's message and usage).
//!
//! Modules: `args` declares the command line; `replay` runs a replay on
//! the memory backend or on `redis`'s; `inspect` reads one key. No module
//! refers back to one that uses it.

mod args;
mod dashboard;
mod inspect;
mod redis;
mod replay;

use std::io;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use ratelimit_replay::printable;

use crate::args::{Cli, Command};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line asks for something impossible: exit status 2, in
    /// clap's format.
    Usage(String),
    /// The input, Redis or the output failed: exit status 1.
    Runtime(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, result) = match &cli.command {
        Command::Replay(args) => (
            "replay",
            args.validate()
                .map_err(Failure::Usage)
                .and_then(|options| replay::run(&options)),
        ),
        Command::Inspect(args) => ("inspect", inspect::run(args).map(|line| println!("{line}"))),
        Command::Dashboard(args) => ("dashboard", dashboard::run(args)),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "ratelimit", &mut io::stdout());
            ("completions", Ok(()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            let mut command = Cli::command();
            command.build();
            let sub = command
                .find_subcommand_mut(name)
                .expect("every command has its subcommand");
            let error = sub.error(ErrorKind::ValueValidation, message);
            let _ = error.print();
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {}", printable_message(&message));
            ExitCode::FAILURE
        }
    }
}

/// A message with every non-printable character escaped, so that text from
/// Redis or the input cannot drive the terminal. Backslashes are left
/// alone: the replay's messages already escape their input.
fn printable_message(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '\\' => "\\".to_owned(),
            c => printable(c.encode_utf8(&mut [0; 4])).into_owned(),
        })
        .collect()
}
