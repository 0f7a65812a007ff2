//! `ratelimit replay`: the events on stdin through the chosen backend, the
//! decisions to stdout (buffered), the summary to stderr (buffered).

use std::io::{self, BufWriter, Write};

use ratelimit_core::AnyAlgorithm;
use ratelimit_replay::{Backend, Memory, Replayable, Summary, Visit, visit};

use crate::Failure;
use crate::args::Replay;
use crate::redis::{RedisReplay, RedisReplayable};

/// The output buffers: large enough that writing costs a system call per
/// 64 KiB, not per line.
const BUFFER_BYTES: usize = 1 << 16;

/// Runs the replay.
pub(crate) fn run(options: &Replay<'_>) -> Result<(), Failure> {
    match options.redis {
        // A simulation never refuses a key for want of room: the bound on
        // keys protects servers, not replays.
        None => visit(options.algorithm, InMemory(options.summary)),
        Some((url, prefix)) => match options.algorithm {
            AnyAlgorithm::TokenBucket(a) => on_redis(a, url, prefix, options.summary),
            AnyAlgorithm::LeakyBucket(a) => on_redis(a, url, prefix, options.summary),
            AnyAlgorithm::FixedWindow(a) => on_redis(a, url, prefix, options.summary),
            AnyAlgorithm::SlidingWindow(a) => on_redis(a, url, prefix, options.summary),
        },
    }
}

/// A replay on the memory backend, with the algorithm chosen at run time.
struct InMemory(bool);

impl Visit for InMemory {
    type Output = Result<(), Failure>;

    fn visit<A: Replayable>(self, algorithm: A) -> Self::Output {
        drive(&mut Memory::new(algorithm, usize::MAX), self.0)
    }
}

fn on_redis<A: RedisReplayable>(
    algorithm: A,
    url: &str,
    prefix: Option<&str>,
    summary: bool,
) -> Result<(), Failure> {
    let mut backend = RedisReplay::open(algorithm, url, prefix).map_err(|e| {
        if e.is_redis_failure() {
            Failure::Runtime(e.to_string())
        } else {
            Failure::Usage(e.to_string())
        }
    })?;
    drive(&mut backend, summary)
}

/// Replays stdin through `backend` to stdout, then prints the summary.
fn drive<B: Backend>(backend: &mut B, summary: bool) -> Result<(), Failure> {
    let mut counts = Summary::default();
    let result = ratelimit_replay::replay(
        backend,
        io::stdin().lock(),
        BufWriter::with_capacity(BUFFER_BYTES, io::stdout().lock()),
        summary.then_some(&mut counts),
    );
    if summary {
        let mut stderr = BufWriter::with_capacity(BUFFER_BYTES, io::stderr().lock());
        write!(stderr, "{counts}")
            .and_then(|()| stderr.flush())
            .map_err(|e| Failure::Runtime(format!("cannot write the summary: {e}")))?;
    }
    result.map_err(|e| Failure::Runtime(e.to_string()))
}
