//! `ratelimit replay`: the events on stdin through the chosen backend.

use std::io::{self, BufWriter};
use std::process::ExitCode;

use ratelimit_core::{AlgorithmKind, LeakyBucket, TokenBucket};
use ratelimit_replay::{Backend, Memory, Replayable, Summary};

use crate::args::{BackendKind, ReplayArgs};

/// The in-memory limiter for a replay. A simulation never refuses a key
/// for want of room: the bound on keys protects servers, not replays.
fn memory<A: Replayable>(algorithm: A) -> Memory<A> {
    Memory::new(algorithm, usize::MAX)
}

/// Runs the replay and reports how it ended.
pub(crate) fn run(args: &ReplayArgs) -> ExitCode {
    let result = match (&args.backend, args.algorithm) {
        (BackendKind::Memory, AlgorithmKind::TokenBucket) => {
            drive(&mut memory(TokenBucket::new(args.quota)), args.summary)
        }
        (BackendKind::Memory, AlgorithmKind::LeakyBucket) => {
            drive(&mut memory(LeakyBucket::new(args.quota)), args.summary)
        }
        (BackendKind::Redis, _) => crate::redis::replay(args),
        (_, kind) => Err(format!("{kind} is not available in the CLI yet")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Replays stdin through `backend` to stdout, then prints the summary.
pub(crate) fn drive<B: Backend>(backend: &mut B, summary: bool) -> Result<(), String> {
    let mut counts = Summary::default();
    let stdout = io::stdout();
    let result = ratelimit_replay::replay(
        backend,
        io::stdin().lock(),
        BufWriter::new(stdout.lock()),
        summary.then_some(&mut counts),
    );
    if summary {
        eprint!("{counts}");
    }
    result.map_err(|e| e.to_string())
}
