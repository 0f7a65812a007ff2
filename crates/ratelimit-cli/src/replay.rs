//! `ratelimit replay`: the events on stdin through the chosen backend.

use std::io::{self, BufWriter};
use std::process::ExitCode;
use std::sync::Arc;

use ratelimit_core::{
    Algorithm, AlgorithmKind, Decision, InsufficientCapacity, LeakyBucket, ManualClock,
    Reservation, TokenBucket,
};
use ratelimit_memory::KeyedLimiter;
use ratelimit_replay::{Backend, Summary};

use crate::args::{BackendKind, ReplayArgs};

/// The in-memory limiter on a manual clock set to each event's time.
struct Memory<A> {
    clock: Arc<ManualClock>,
    limiter: KeyedLimiter<String, A, Arc<ManualClock>>,
}

impl<A: Algorithm> Memory<A> {
    fn new(algorithm: A) -> Self {
        let clock = Arc::new(ManualClock::new(0));
        // A simulation never refuses a key for want of room: the bound on
        // keys protects servers, not replays.
        let limiter = KeyedLimiter::builder(algorithm)
            .clock(Arc::clone(&clock))
            .max_keys(usize::MAX)
            .build();
        Self { clock, limiter }
    }
}

impl<A: Algorithm> Backend for Memory<A> {
    type Error = core::convert::Infallible;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Self::Error> {
        self.clock.set_ns(now_ns);
        Ok(self.limiter.check_n(key, cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Self::Error> {
        self.clock.set_ns(now_ns);
        Ok(self
            .limiter
            .reserve(key, cost, max_wait_ns.map(core::time::Duration::from_nanos)))
    }
}

/// Runs the replay and reports how it ended.
pub(crate) fn run(args: &ReplayArgs) -> ExitCode {
    let result = match (&args.backend, args.algorithm) {
        (BackendKind::Memory, AlgorithmKind::TokenBucket) => {
            drive(&mut Memory::new(TokenBucket::new(args.quota)), args.summary)
        }
        (BackendKind::Memory, AlgorithmKind::LeakyBucket) => {
            drive(&mut Memory::new(LeakyBucket::new(args.quota)), args.summary)
        }
        (BackendKind::Redis, _) => crate::redis::replay(args),
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
